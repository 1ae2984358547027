#!/bin/bash
# many.sh BIN N: N interleaved rounds of the 50,000-file RUN (rbk, --no-cache) and the machine limit
# (the same busybox loop on the host in a fresh dir, then busybox tar -cf of it).
BIN=$1; N=${2:-3}; cd /work/idle
for i in $(seq $N); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "rbk %e s wall %U u %S s (load $load)" $BIN --root /work/idle/store build --progress=quiet --no-cache many 2>&1 >/dev/null | grep -v "^writing\|^naming"
  d=/work/idle/limit-$(date +%s%N); mkdir -p $d
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "limit %e s wall %U u %S s (load $load)" sh -c "cd $d && mkdir many && cd many && busybox sh -c 'i=0; while [ \$i -lt 50000 ]; do : > f\$i; i=\$((i+1)); done' && busybox tar -cf $d/t.tar ." 2>&1
done
