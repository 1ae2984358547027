set -e
mkdir -p payload/inner
echo one > payload/one
echo two > payload/inner/two
ln -s one payload/link
chmod 0640 payload/one
touch -h -d @1500000000 payload/one payload/inner/two payload/link payload/inner payload
tar --owner=1234 --group=5678 -cf plain.tar -C payload .
tar --numeric-owner -czf packed.tar.gz payload
rm -rf payload
