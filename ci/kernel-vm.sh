#!/usr/bin/env bash
# rn's kernel WireGuard backend, tested in a QEMU virtual machine (TCG: no /dev/kvm needed, and
# no WireGuard module needed on this machine). Debian's cloud kernel, which has the module,
# boots an initramfs holding busybox, the static rn, bash, ip, nft, wg, the modules the test
# needs and ci/kernel-vm-guest.sh (with ci/netns-lib.sh and ci/assert-lib.sh, and ci/e2e-sessions.sh when present);
# the guest runs the test in network namespaces, prints its results on the serial console and
# powers off. Everything it needs it installs when missing (Debian 12, as root).
#
# Usage: ci/kernel-vm.sh RN_STATIC_BINARY
#   RN_VM_CACHE    downloads, the extracted kernel and the logs (default /var/cache/rn-kernel-vm)
#   RN_VM_TIMEOUT  hard limit on the VM's run, in seconds (default 900)
#   RN_VM_SESSION_RUNS  RUNS passed to ci/e2e-sessions.sh in the guest (default 10)
#   RN_VM_SESSIONS=0    skip ci/e2e-sessions.sh even when it exists
# Exit 0 only if the guest ran to its end and every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] && [ -f "$1" ] || { echo "usage: ci/kernel-vm.sh RN_STATIC_BINARY" >&2; exit 64; }
RN=$(realpath "$1")
CACHE=${RN_VM_CACHE:-/var/cache/rn-kernel-vm}
TIMEOUT=${RN_VM_TIMEOUT:-900}
SESSION_RUNS=${RN_VM_SESSION_RUNS:-10}
T0=$(date +%s)
say() { echo "kernel-vm: $*"; }
[ "$(id -u)" = 0 ] || { say "needs root (apt-get, the cache in $CACHE)"; exit 77; }

# --- host tools, installed when missing --------------------------------------------------------
APT_UPDATED=0
apt_update() { [ "$APT_UPDATED" = 1 ] || { apt-get update -qq; APT_UPDATED=1; }; }
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v depmod >/dev/null || missing+=(kmod)
command -v cpio >/dev/null || missing+=(cpio)
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
command -v wg >/dev/null || missing+=(wireguard-tools)
command -v gzip >/dev/null || missing+=(gzip)
command -v xz >/dev/null || missing+=(xz-utils)   # compressed modules (newer kernels)
[ -f /etc/protocols ] && [ -f /etc/services ] || missing+=(netbase)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing: ${missing[*]}"
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- kernel and busybox from Debian, downloaded once and cached --------------------------------
mkdir -p "$CACHE/deb"
# download PACKAGE: the package's .deb in $CACHE/deb (kept), its path printed
download() {
    local f
    f=$(ls "$CACHE/deb/$1"_*.deb 2>/dev/null | head -1)
    if [ -z "$f" ]; then
        apt_update || true
        (cd "$CACHE/deb" && apt-get download -q -o APT::Sandbox::User=root "$1" >/dev/null) || return 1
        f=$(ls "$CACHE/deb/$1"_*.deb 2>/dev/null | head -1)
        [ -n "$f" ] || return 1
        say "downloaded $(basename "$f")" >&2
    fi
    echo "$f"
}
# The versioned image linux-image-cloud-amd64 depends on (the newest this machine's lists know).
kernel_pkg() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
cached_kernel() { ls -d "$CACHE"/kernel/linux-image-*/.done 2>/dev/null | sort -V | tail -1 | xargs -r dirname | xargs -r basename; }
KPKG=${RN_VM_KERNEL_PKG:-$(kernel_pkg)}
if [ -z "$KPKG" ] || [ ! -e "$CACHE/kernel/$KPKG/.done" ]; then
    # Not cached yet: fresh package lists first (they may be missing, or name a kernel the
    # archive no longer has).
    apt_update || true
    KPKG=${RN_VM_KERNEL_PKG:-$(kernel_pkg)}
fi
[ -n "$KPKG" ] || KPKG=$(cached_kernel)
[ -n "$KPKG" ] || { say "cannot resolve linux-image-cloud-amd64 to a kernel package"; exit 1; }
KDIR=$CACHE/kernel/$KPKG
if [ ! -e "$KDIR/.done" ]; then
    if deb=$(download "$KPKG"); then
        rm -rf "$KDIR"; mkdir -p "$KDIR"
        dpkg-deb -x "$deb" "$KDIR"
        kver=$(ls "$KDIR/lib/modules")
        depmod -b "$KDIR" "$kver"   # the package ships no modules.dep
        touch "$KDIR/.done"
        say "extracted $KPKG (modules.dep made by depmod)"
    elif [ -n "$(cached_kernel)" ]; then
        say "cannot download $KPKG; using the cached $(cached_kernel)"
        KPKG=$(cached_kernel); KDIR=$CACHE/kernel/$KPKG
    else
        say "cannot download $KPKG"; exit 1
    fi
fi
KVER=$(ls "$KDIR/lib/modules")
VMLINUZ=$KDIR/boot/vmlinuz-$KVER
MODDIR=$KDIR/lib/modules/$KVER
BBDIR=$CACHE/busybox
if [ ! -x "$BBDIR/bin/busybox" ]; then
    deb=$(download busybox-static) || { say "cannot download busybox-static"; exit 1; }
    rm -rf "$BBDIR"; mkdir -p "$BBDIR"
    dpkg-deb -x "$deb" "$BBDIR"
    say "extracted $(basename "$deb")"
fi
say "kernel $KVER ($KPKG), $("$BBDIR/bin/busybox" 2>&1 | head -1 | cut -d' ' -f1-2)"

# --- modules: the roots, resolved from modules.dep into load order -----------------------------
# wireguard (and its crypto and UDP tunnel chain); veth and bridge for the underlay; tun; what
# rn's nftables ruleset uses (ct state, masquerade in a nat chain) and reject for good measure.
ROOTS=(wireguard veth bridge tun nf_tables nft_ct nft_chain_nat nft_nat nft_masq nft_reject nft_reject_inet)
declare -A DEPS=() SEEN=()
while IFS= read -r line; do
    DEPS[${line%%:*}]=${line#*:}
done <"$MODDIR/modules.dep"
ORDER=()
add_module() { # PATH (relative to the modules directory), after its dependencies
    local m=$1 deps i
    [ -z "${SEEN[$m]:-}" ] || return 0
    SEEN[$m]=1
    read -ra deps <<<"${DEPS[$m]}"
    # modules.dep lists every dependency, the ones loaded last first
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do add_module "${deps[$i]}"; done
    ORDER+=("$m")
}
for r in "${ROOTS[@]}"; do
    p=$(printf '%s\n' "${!DEPS[@]}" | grep -E "(^|/)$r\.ko(\.[a-z]+)?$" | head -1 || true)
    if [ -z "$p" ]; then
        if grep -qE "(^|/)$r\.ko" "$MODDIR/modules.builtin"; then say "module $r is built in"; continue; fi
        say "module $r: neither a module nor built into $KVER"; exit 1
    fi
    add_module "$p"
done

# --- the initramfs -----------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rn-kernel-vm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,etc,proc,sys,dev,run,tmp,root,var,rn/ci}
ln -s usr/lib "$R/lib"
ln -s usr/lib64 "$R/lib64"
ln -s /run "$R/var/run"
chmod 1777 "$R/tmp"
cp "$BBDIR/bin/busybox" "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
ln -s /bin/busybox "$R/usr/bin/env"
# copy_with_libs SRC DEST: a host binary and every library ldd names (and the loader)
copy_with_libs() {
    install -m 755 "$1" "$R$2"
    # (a static binary: ldd names nothing)
    { ldd "$1" 2>/dev/null || true; } | { grep -oE '/[^ ]+' || true; } | while read -r lib; do
        [ -e "$R$lib" ] && continue
        mkdir -p "$R$(dirname "$lib")"
        cp -L "$lib" "$R$lib"
    done
}
copy_with_libs "$(command -v bash)" /usr/bin/bash
copy_with_libs "$(command -v ip)" /usr/sbin/ip
copy_with_libs "$(command -v nft)" /usr/sbin/nft
copy_with_libs "$(command -v wg)" /usr/bin/wg
# busybox date has no %N, which the wait loops of ci/netns-lib.sh use
copy_with_libs /usr/bin/date /usr/bin/date
copy_with_libs "$RN" /usr/bin/rn
cp /etc/protocols /etc/services "$R/etc/"
[ -d /etc/iproute2 ] && cp -r /etc/iproute2 "$R/etc/"
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"
echo 'hosts: files' >"$R/etc/nsswitch.conf"
echo '127.0.0.1 localhost' >"$R/etc/hosts"
for m in "${ORDER[@]}"; do
    mkdir -p "$R/lib/modules/$KVER/$(dirname "$m")"
    case $m in
        *.ko.xz) xz -dc "$MODDIR/$m" >"$R/lib/modules/$KVER/${m%.xz}" ;;
        *.ko.zst) zstd -qdc "$MODDIR/$m" >"$R/lib/modules/$KVER/${m%.zst}" ;;
        *.ko.gz) gzip -dc "$MODDIR/$m" >"$R/lib/modules/$KVER/${m%.gz}" ;;
        *) cp "$MODDIR/$m" "$R/lib/modules/$KVER/$m" ;;
    esac
    echo "${m%.ko*}.ko" >>"$R/etc/kernel-vm.modules"
done
cp ci/netns-lib.sh ci/assert-lib.sh ci/kernel-vm-guest.sh "$R/rn/ci/"
SESSIONS=no
if [ "${RN_VM_SESSIONS:-1}" != 0 ] && [ -f ci/e2e-sessions.sh ]; then
    cp ci/e2e-sessions.sh "$R/rn/ci/"
    SESSIONS=yes
fi
cat >"$R/init" <<EOF
#!/bin/sh
# rn kernel-vm guest: mount, load modules, run the tests, power off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/net
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
[ -c /dev/net/tun ] || mknod /dev/net/tun c 10 200
echo "kernel-vm: guest init at \$(cut -d' ' -f1 /proc/uptime) s (kernel \$(uname -r))"
loaded=""
while read -r m; do
    if insmod "/lib/modules/$KVER/\$m"; then loaded="\$loaded \$(basename "\$m" .ko)"; else echo "kernel-vm: insmod \$m failed"; fi
done </etc/kernel-vm.modules
echo "kernel-vm: modules loaded:\$loaded"
hostname rn-kernel-vm
ip link set lo up
cd /rn
echo "kernel-vm: guest test starts at \$(cut -d' ' -f1 /proc/uptime) s"
bash ci/kernel-vm-guest.sh /usr/bin/rn 2>&1
if [ "$SESSIONS" = yes ]; then
    echo "kernel-vm: e2e-sessions starts at \$(cut -d' ' -f1 /proc/uptime) s"
    bash ci/e2e-sessions.sh /usr/bin/rn kernel $SESSION_RUNS 2>&1
    echo "kernel-vm: e2e-sessions exited \$?"
fi
echo "kernel-vm: guest done at \$(cut -d' ' -f1 /proc/uptime) s"
sync
poweroff -f
EOF
chmod 755 "$R/init"
INITRD=$WORK/initrd.gz
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$INITRD"
say "initramfs: $(du -h "$INITRD" | cut -f1), ${#ORDER[@]} modules, rn $(du -h "$RN" | cut -f1), e2e-sessions: $SESSIONS ($(($(date +%s) - T0)) s so far)"

# --- boot ----------------------------------------------------------------------------------------
mkdir -p "$CACHE/logs"
{ ls -1t "$CACHE"/logs/run-*.log 2>/dev/null || true; } | tail -n +20 | xargs -r rm -f   # the last 20 stay
LOG=$CACHE/logs/run-$(date +%Y%m%d-%H%M%S).log
say "booting (TCG, timeout ${TIMEOUT} s); serial console -> $LOG"
B0=$(date +%s)
set +e
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m 1024 -smp 2 \
    -nographic -no-reboot -nic none -kernel "$VMLINUZ" -initrd "$INITRD" \
    -append 'console=ttyS0 quiet panic=-1' </dev/null 2>&1 | tr -d '\r' | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
say "VM ran $(($(date +%s) - B0)) s (qemu exit $rc); total $(($(date +%s) - T0)) s; log $LOG"
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then say "FAIL: timed out after ${TIMEOUT} s"; exit 1; fi
result=$(grep -E '^kernel-vm: [0-9]+ passed, [0-9]+ failed$' "$LOG" | tail -1 || true)
[ -n "$result" ] || { say "FAIL: the guest printed no result line"; exit 1; }
failed=0
# Nothing failed, and something was checked.
grep -qE '^kernel-vm: [1-9][0-9]* passed, 0 failed$' <<<"$result" || failed=1
if [ "$SESSIONS" = yes ]; then
    sres=$(grep -E '^e2e-sessions \(kernel\): [0-9]+ passed, [0-9]+ failed$' "$LOG" | tail -1 || true)
    if [ -z "$sres" ]; then say "FAIL: e2e-sessions printed no result line"; failed=1
    else grep -qE '\): [1-9][0-9]* passed, 0 failed$' <<<"$sres" || failed=1; echo "$sres"; fi
fi
echo "$result"
exit "$failed"
