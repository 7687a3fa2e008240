#!/bin/busybox sh
# /init of the end-to-end guest (busybox, PID 1). Brings up what the NFS
# client needs, hands over to /e2e/session.sh, powers off. The driver reads
# the serial console; lines starting with "E2E " are its markers.
#
# Parameters arrive as environment variables: the kernel passes every
# unrecognized NAME=value of its command line to init's environment
# (E2E_PORT, E2E_STEPS, E2E_STEP_TIMEOUT; see session.sh).
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "E2E BOOTED kernel $(uname -r)"

# Modules in dependency order (listed when the image was built).
while read -r ko; do
  insmod "$ko" || echo "insmod $ko failed"
done < /e2e/modules

# qemu's user-mode network: the guest is 10.0.2.15, the host's loopback is
# reachable as 10.0.2.2.
ip link set lo up
nic=$(ls /sys/class/net | grep -v '^lo$' | head -1)
ip link set "$nic" up
ip addr add 10.0.2.15/24 dev "$nic"
ip route add default via 10.0.2.2

sh /e2e/session.sh
echo "E2E POWEROFF"
sync
poweroff -f
