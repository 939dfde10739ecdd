#!/usr/bin/env bash
# NBD_FLAG_CAN_MULTI_CONN is offered only when the server takes
# connections in parallel: a plugin that says can_multi_conn but
# serializes connections does not get it.
. "$(dirname "$0")/functions.sh"
requires nbdinfo --version
cd "$tmpdir"
for model in serialize_connections serialize_requests parallel; do
  cat > "plug-$model.sh" <<SH
#!/bin/sh
case "\$1" in
  get_size) echo 1M ;;
  pread) dd if=/dev/zero count=\$3 iflag=count_bytes 2>/dev/null ;;
  can_multi_conn) exit 0 ;;
  thread_model) echo $model ;;
  *) exit 2 ;;
esac
SH
  chmod +x "plug-$model.sh"
  got=$("$NBDKIT" -r -U - sh "./plug-$model.sh" \
          --run 'nbdinfo --json "$uri"' | grep '"can_multi_conn"') \
    || fail "$model: server or nbdinfo failed"
  case $model in
    serialize_connections) want=false ;;
    *) want=true ;;
  esac
  echo "$got" | grep -q "\"can_multi_conn\": $want" \
    || fail "$model: expected can_multi_conn $want, got: $got"
done
echo "eflags-multi-conn: OK"
