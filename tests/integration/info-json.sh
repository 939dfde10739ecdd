#!/usr/bin/env bash
# nbdinfo --json on `memory 1G`: size, capability flags and the
# base:allocation context.
. "$(dirname "$0")/functions.sh"
requires nbdinfo

t "$NBDKIT" -U - memory 1G --run 'nbdinfo --json "$uri"' > info.json
cat info.json

"$PYTHON" - info.json <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["protocol"] == "newstyle-fixed", j["protocol"]
assert j["structured"] is True
assert j["TLS"] is False
assert len(j["exports"]) == 1, j["exports"]
e = j["exports"][0]
assert e["export-name"] == "", e["export-name"]
assert e["export-size"] == 1073741824, e["export-size"]
assert "base:allocation" in e["contexts"], e["contexts"]
for k in ("can_zero", "can_trim", "can_flush", "can_fua",
          "can_multi_conn", "can_cache", "can_df", "can_fast_zero"):
    assert e[k] is True, (k, e[k])
assert e["is_read_only"] is False
assert e["is_rotational"] is False
print("info-json: OK")
PY

# Same with size= and a read-only server.
t "$NBDKIT" -r -U - memory size=12345 --run 'nbdinfo --json "$uri"' > ro.json
"$PYTHON" - ro.json <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
assert e["export-size"] == 12345, e["export-size"]
assert e["is_read_only"] is True
# A read-only export offers no write-type commands.
for k in ("can_zero", "can_trim", "can_fua", "can_fast_zero"):
    assert e.get(k) is not True, (k, e.get(k))
PY
