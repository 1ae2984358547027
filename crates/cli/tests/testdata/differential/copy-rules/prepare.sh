set -e
ln -sf a.txt link-to-a
ln -sf /nowhere dir/dangling
ln -sf ../top dir/sub/uplink
mkdir -p emptydir
printf '#!/bin/sh\necho run\n' > exec.sh
chmod 0755 exec.sh
chmod 0600 b.txt
chmod 0750 dir/sub
