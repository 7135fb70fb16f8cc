#!/usr/bin/env bash
# `make install` into a staging DESTDIR, then the installed launcher finds
# the installed library and runs a threaded server on fibers.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
stage=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$stage"
}
trap cleanup EXIT
pass=0 fail=0
check() {
    if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi
}
make -s install BUILD="$BUILD" DESTDIR="$stage" PREFIX=/opt/greenld >/dev/null
bin=$stage/opt/greenld/bin/greenld
check "install puts the launcher, the library and the header in place" \
    '[ -x "$bin" ] && [ -f "$stage/opt/greenld/lib/greenld/libgreenld.so" ] && [ -f "$stage/opt/greenld/include/greenld.h" ]'
man=$stage/opt/greenld/share/man
check "install puts the man pages greenld(1), greenld(3), greenld(7) in place" \
    '[ -f "$man/man1/greenld.1" ] && [ -f "$man/man3/greenld.3" ] && [ -f "$man/man7/greenld.7" ]'
check "the installed launcher reports the version" '[ "$("$bin" --version)" = "greenld $(cat VERSION)" ]'
env -u GREENLD_LIBRARY "$bin" -- env | grep -q "^LD_PRELOAD=$stage/opt/greenld/lib/greenld/libgreenld.so"
check "the installed launcher preloads the installed library" '[ $? -eq 0 ]'
env -u GREENLD_LIBRARY "$bin" --hubs 2 -- "$BUILD/tests/echo_server" --port-file "$stage/port" &
server=$!
for _ in $(seq 100); do [ -s "$stage/port" ] && break; sleep 0.1; done
line=$("$BUILD/tests/load_client" --port "$(cat "$stage/port" 2>/dev/null || echo 1)" --conns 200 --requests 10 \
    --server-pid "$server" --timeout-sec 30)
rc=$?
echo "# $line"
check "a server run by the installed launcher serves 200 connections on fibers" \
    '[ $rc -eq 0 ] && [ "$(sed -nE "s/.*server_threads_max=([0-9]+).*/\1/p" <<<"$line")" -le 4 ]'
# A program linked with -lgreenld (greenld(3)) finds the library by its
# soname, libnss_greenld.so.2 (the name glibc's NSS knows it by).
lib=$stage/opt/greenld/lib/greenld
printf '#include <greenld.h>\nint main(void) { return greenld_is_fiber() == 0 ? 0 : 1; }\n' >"$stage/api.c"
${CC:-gcc} -I"$stage/opt/greenld/include" -o "$stage/api" "$stage/api.c" -L"$lib" -lgreenld -Wl,-rpath,"$lib" &&
    "$stage/api"
check "a program linked with -lgreenld against the installed library runs" '[ $? -eq 0 ]'
# pkg-config: a program built against the installed greenld.h and library
# runs its threads on fibers with no launcher (the library is DT_NEEDED).
pc=$stage/opt/greenld/lib/pkgconfig/greenld.pc
check "install puts greenld.pc in lib/pkgconfig, with the prefix and the version" \
    '[ -f "$pc" ] && grep -qx "prefix=/opt/greenld" "$pc" && grep -qx "Version: $(cat VERSION)" "$pc"'
flags=$(PKG_CONFIG_PATH=$stage/opt/greenld/lib/pkgconfig pkg-config --define-prefix --cflags --libs greenld 2>&1)
check "pkg-config greenld gives -I, -L and -lgreenld for the installed tree" \
    '[[ $flags == *"-I$stage/opt/greenld/include"* && $flags == *"-L$stage/opt/greenld/lib/greenld"* && $flags == *-lgreenld* ]]'
cat > "$stage/api_user.c" <<'EOF'
#include <greenld.h>
#include <pthread.h>
#include <stdio.h>
static void *run(void *out) { *(int *)out = greenld_is_fiber(); return NULL; }
int main(void) {
    int in_thread = -1;
    pthread_t t;
    pthread_create(&t, NULL, run, &in_thread);
    pthread_join(t, NULL);
    printf("main=%d thread=%d\n", greenld_is_fiber(), in_thread);
    return 0;
}
EOF
# shellcheck disable=SC2086
cc -o "$stage/api_user" "$stage/api_user.c" $flags 2>"$stage/cc.err"
api_out=$(env -u LD_PRELOAD timeout 30 "$stage/api_user" 2>&1)
check "a program built with pkg-config's flags runs its threads as fibers, without the launcher" \
    '[ "$api_out" = "main=0 thread=1" ] || { cat "$stage/cc.err"; echo "# got: $api_out"; false; }'
rm -f "$stage/api_user" "$stage/api_user.c" "$stage/cc.err"

make -s uninstall DESTDIR="$stage" PREFIX=/opt/greenld >/dev/null
check "uninstall removes what install put" \
    '[ ! -e "$bin" ] && [ ! -e "$stage/opt/greenld/lib/greenld" ] && [ -z "$(find "$stage/opt" -type f)" ]'
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
