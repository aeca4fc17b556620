# Shared by scripts/bench and scripts/bench-ab: which guard configuration a benchmark runs, and how compare.sh is
# started. Source after common.sh, from the repository root.

compare=../shared/bench/compare.sh

# bench_select_policy: sets `config` (a guard.yaml under Benchmarks/guard) and `auth` (h2load's authorization
# header, or nothing) from BENCH_POLICY.
#
# BENCH_POLICY=audited (default): Benchmarks/guard/audited.yaml: a policy of 20 roles and 50 rules, h2load
#   authenticated as `bench` (a password check once, then cached), every mutation audited (write-ahead).
# BENCH_POLICY=audited-normal: audited with `audit.sync: normal` (no fsync per commit).
# BENCH_POLICY=realistic: the same without auditing (the cost of the decision alone).
# BENCH_POLICY=open: anonymous clients, a one-rule policy, no auditing (the baseline).
bench_select_policy() {
    case "${BENCH_POLICY:-audited}" in
    audited | audited-normal | realistic)
        config=Benchmarks/guard/${BENCH_POLICY:-audited}.yaml
        # base64("bench:bench-password"), the benchmark credential of Benchmarks/guard/policies/realistic.yaml.
        auth="-H 'authorization: YmVuY2g6YmVuY2gtcGFzc3dvcmQ='" ;;
    open)
        config=Benchmarks/guard/open.yaml
        auth="" ;;
    *) die "BENCH_POLICY must be audited, audited-normal, realistic or open" ;;
    esac
}

# bench_clean_store: removes the audit store the benchmark configurations write (Benchmarks/guard/bench-audit.db),
# so that every run starts from an empty store.
bench_clean_store() {
    rm -f Benchmarks/guard/bench-audit.db Benchmarks/guard/bench-audit.db-wal Benchmarks/guard/bench-audit.db-shm
}

# bench_runner: sets `run`, the command that starts compare.sh.
#
# BENCH_TMPFS=1: run compare.sh in a private mount namespace with a tmpfs on /tmp (needs root). compare.sh's
# upstream, `nghttpd --echo-upload`, writes every request body to a new file /tmp/nghttpd.temp.XXXXXX and deletes
# it. On ext4 without a journal (this VM's disk), creating a file skips every inode deleted in the last 60-300 s
# (ext4's recently_deleted), so nghttpd's cost per request grows with the requests of the last minutes: measured
# 82 -> 578 us over consecutive 5-second runs, with its core at 100 %. The upstream is then the bottleneck and
# req/s says more about the order of the runs than about the proxies. With /tmp in memory the upstream keeps
# pace and the proxy's own cost decides. The guard's audit store (Benchmarks/guard) stays on the disk.
bench_runner() {
    [ -f "$compare" ] || die "$compare not found: run from a checkout with shared/ beside it"
    run=(bash "$compare")
    if [ -n "${BENCH_TMPFS:-}" ]; then
        [ "$(id -u)" = 0 ] || die "BENCH_TMPFS needs root (a mount namespace with a tmpfs on /tmp)"
        run=(unshare --mount --propagation private sh -c 'mount -t tmpfs -o size=2g tmpfs /tmp && exec bash "$0"'
            "$compare")
    fi
}

# bench_put_cmd BIN: compare.sh's PUT_CMD for the guard binary BIN with `config`: one thread, in the foreground.
# The guard serves gRPC only, so the bench's upstream (nghttpd echoing the request) is fine as Milvus.
bench_put_cmd() {
    printf '%s serve --config %s --threads 1 --log-level warning --listen 127.0.0.1:{port} --upstream 127.0.0.1:{upstream}' \
        "$1" "$PWD/$config"
}
