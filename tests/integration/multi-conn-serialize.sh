#!/usr/bin/env bash
# A plugin that says it can take several connections but whose thread
# model is serialize_connections is not advertised as multi-conn (a
# second connection would wait for the first), as nbdkit does.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

for model in serialize_connections parallel; do
  cat > plug.sh <<EOF2
#!/bin/bash
case "\$1" in
  get_size) echo 1M ;;
  can_multi_conn) exit 0 ;;
  thread_model) echo $model ;;
  *) exit 2 ;;
esac
EOF2
  chmod +x plug.sh
  got=$(t "$NBDKIT" -U - -r sh ./plug.sh --run 'nbdsh -u "$uri" -c "print(h.can_multi_conn())"')
  case $model in
    parallel) assert_eq "multi-conn ($model)" "$got" True ;;
    *) assert_eq "multi-conn ($model)" "$got" False ;;
  esac
done
echo "multi-conn-serialize: OK"
