"""`podwire why`: every verdict's numbers recomputed by DuckDB over the same Parquet, on the demo
scene (real programs in network namespaces: a refused port, dropped SYNs, a mid-stream reset, an
ICMP port unreachable, an NXDOMAIN), on a scene of its own (why_scene.py: a pod deleted and its
address reused, a slow and lossy link, an address reached without a lookup) and on shared
captures with no inventory (unnamed private addresses: stale endpoints; retransmissions:
degraded); each verdict's KFL lists its rows; the API answers as the CLI does. `why-not`: each
reason on the stores that have it, its counts from DuckDB."""
import datetime
import ipaddress
import json
import os
import shutil
import subprocess

import duckdb
import pytest

from podwire_bin import BIN, PCAPS, run
import why_scene

WINDOW = ["--from", "1970-01-01", "--to", "2100-01-01"]
# The outcomes each failure verdict stands for (query/service/src/why.rs).
CLASSES = {"refused": ["refused"], "no_answer": ["no_answer", "aborted"], "reset": ["reset"],
           "unreachable": ["unreachable"],
           "stale_endpoint": ["refused", "no_answer", "aborted", "reset", "unreachable"]}
BAD = CLASSES["stale_endpoint"]


def why(store, kfl=""):
    out = run("why", "--store", str(store), *WINDOW, "--format", "json", kfl)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def is_ip(s):
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def side_sql(side, node):
    """The rows of one end of a map node id at workload level (the id rules of map.rs, again)."""
    kind, rest = node.split(":", 1)
    p = f"{side}_"
    q = lambda s: "'" + s.replace("'", "''") + "'"
    if kind in ("wl", "pod", "svc"):
        ns, name = rest.split("/", 1)
        return {
            "wl": f"{p}namespace = {q(ns)} AND {p}pod <> '' AND {p}workload = {q(name)}",
            "pod": f"{p}namespace = {q(ns)} AND {p}workload = '' AND {p}pod = {q(name)}",
            "svc": f"{p}namespace = {q(ns)} AND {p}pod = '' AND {p}service = {q(name)}",
        }[kind]
    if kind == "ns":
        return f"{p}namespace = {q(rest)} AND {p}pod = '' AND {p}service = ''"
    if kind == "node":
        return f"{p}namespace = '' AND {p}node = {q(rest)}"
    outside = f"{p}namespace = '' AND {p}node = ''"
    if side == "dst" and not is_ip(rest):
        return f"{outside} AND dst_dns_name = {q(rest)}"
    if side == "dst":
        return f"{outside} AND dst_dns_name = '' AND dst_ip = {q(rest)}"
    return f"{outside} AND src_ip = {q(rest)}"


def duck(store, sql):
    con = duckdb.connect()
    con.execute(f"CREATE VIEW connections AS SELECT * FROM read_parquet('{store}/connections/date=*/hour=*/*.parquet', hive_partitioning=true)")
    if os.path.isdir(f"{store}/dns"):
        con.execute(f"CREATE VIEW dns AS SELECT * FROM read_parquet('{store}/dns/date=*/hour=*/*.parquet', hive_partitioning=true)")
    return con.execute(sql).fetchall()


def ms(col):
    return f"(epoch_us({col}) // 1000)"


def check_against_duckdb(store, report):
    """Every number of every verdict, recomputed."""
    seen_pairs = {}
    for v in report["verdicts"]:
        if v["verdict"] == "dns":
            where = f"{side_sql('src', v['source'])} AND query_name = '{v['target']}'"
            total, failed = duck(store, f"""SELECT count(*), count(*) FILTER (WHERE outcome = 'no_response'
                                        OR rcode NOT IN ('NOERROR', '')) FROM dns WHERE {where}""")[0]
            assert (v["total"], v["failed"]) == (total, failed) and failed > 0, v
            continue
        where = (f"({side_sql('src', v['source'])}) AND ({side_sql('dst', v['target'])}) "
                 f"AND protocol = '{v['protocol']}' AND dst_port = {v['port']}")
        total = duck(store, f"SELECT count(*) FROM connections WHERE is_final AND {where}")[0][0]
        assert v["total"] == total, (v, total)
        seen_pairs[(v["source"], v["target"], v["protocol"], v["port"])] = total
        if v["verdict"] in CLASSES:
            outs = ", ".join(f"'{o}'" for o in CLASSES[v["verdict"]])
            failed, first, last = duck(store, f"""SELECT count(*), min({ms('start_ts')}), max({ms('end_ts')})
                FROM connections WHERE is_final AND outcome IN ({outs}) AND {where}""")[0]
            assert (v["failed"], v["first_ms"], v["last_ms"]) == (failed, first, last) and failed > 0, v
        else:
            bad = ", ".join(f"'{o}'" for o in BAD)
            assert v["failed"] == 0 and duck(store, f"""SELECT count(*) FROM connections
                WHERE is_final AND outcome IN ({bad}) AND {where}""")[0][0] == 0, v
        ev = v["evidence"]
        if v["verdict"] == "no_answer":
            sent = duck(store, f"""SELECT sum(src_packets) FROM connections
                                   WHERE outcome IN ('no_answer', 'aborted') AND {where}""")[0][0]
            assert ev["packets_sent"] == sent, (v, sent)
        if v["verdict"] == "reset":
            by = dict(duck(store, f"""SELECT reset_by, count(*) FROM connections
                                      WHERE is_final AND outcome = 'reset' AND {where} GROUP BY 1"""))
            assert (ev["reset_by_src"], ev["reset_by_dst"]) == (by.get("src", 0), by.get("dst", 0)), v
        if v["verdict"] == "unreachable":
            t, c = duck(store, f"""SELECT max(icmp_type), max(icmp_code) FROM connections
                                   WHERE is_final AND outcome = 'unreachable' AND {where}""")[0]
            assert (ev["icmp_type"], ev["icmp_code"]) == (t, c), v
        if v["verdict"] == "degraded" and "retransmits" in ev:
            r, p = duck(store, f"""SELECT sum(src_retransmits + dst_retransmits),
                                   sum(src_packets + dst_packets) FROM connections WHERE {where}""")[0]
            assert (ev["retransmits"], ev["packets"]) == (r, p) and r > 0.02 * p, v
        for e in v["examples"]:
            got = duck(store, f"""SELECT sum(src_packets), sum(dst_packets), sum(src_bytes + dst_bytes)
                                  FROM connections WHERE conn_id = {e['conn_id']}""")[0]
            assert (e["src_packets"], e["dst_packets"], e["bytes"]) == got, (v["verdict"], e, got)
    # Every connection is in one pair, and every pair was judged.
    finals = duck(store, "SELECT count(*) FROM connections WHERE is_final")[0][0]
    assert sum(seen_pairs.values()) == finals == report["connections"]


def kfl_rows(store, kfl):
    out = run("query", "--store", str(store), *WINDOW, "--format", "json", kfl)
    assert out.returncode == 0, (kfl, out.stderr)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    store = tmp_path_factory.mktemp("why-demo")
    out = run("demo", "--no-serve", "--store", str(store))
    assert out.returncode == 0, out.stderr
    return store


def test_each_failure_of_the_demo_scene_gets_its_verdict(demo):
    report = why(demo)
    found = {(v["verdict"], v["target"], v["port"]) for v in report["verdicts"]}
    for want in [("refused", "wl:shop/web", 8081), ("reset", "wl:shop/web", 9000),
                 ("unreachable", "wl:shop/web", 9999), ("no_answer", "ext:203.0.113.99", 5432),
                 ("dns", "db.batch.svc.cluster.local", 0), ("ok", "wl:shop/web", 8080)]:
        assert want in found, (want, sorted(found))
    by = {v["verdict"]: v for v in report["verdicts"] if v["verdict"] != "ok"}
    assert "nothing was listening" in by["refused"]["explanation"]
    assert "web-" in by["refused"]["explanation"], "names the pod that held the address"
    assert by["reset"]["evidence"]["reset_by_dst"] == 1 and "by the server" in by["reset"]["explanation"]
    assert "port unreachable" in by["unreachable"]["explanation"]
    assert by["dns"]["evidence"] == {"NXDOMAIN": 1}
    assert all(v["verdict"] == "ok" for v in report["verdicts"][-6:]), "problems come first"
    check_against_duckdb(demo, report)


def test_each_verdict_kfl_lists_its_rows(demo):
    for v in why(demo)["verdicts"]:
        rows = kfl_rows(demo, v["kfl"])
        finals = [r for r in rows if r.get("is_final", True)]
        want = v["total"] if v["verdict"] in ("ok", "degraded", "dns") else v["failed"]
        assert len(finals) == want, (v["verdict"], v["kfl"], len(finals), want)


def test_a_filter_narrows_the_verdicts(demo):
    report = why(demo, 'dst.port == 8081')
    assert [v["verdict"] for v in report["verdicts"]] == ["refused"]
    assert report["dns_lookups"] == 0


@pytest.mark.parametrize("name", ["1kxun.pcap", "alexa-app.pcapng", "reddit.pcap"])
def test_shared_captures_without_an_inventory(tmp_path, name):
    """No inventory: every private address is unnamed, so failures towards them are stale
    endpoints; the retransmission-heavy pairs are degraded."""
    out = run("standalone", "--pcap", os.path.join(PCAPS, name), "--store", str(tmp_path))
    assert out.returncode == 0, out.stderr
    report = why(tmp_path)
    assert report["verdicts"]
    check_against_duckdb(tmp_path, report)
    kinds = {v["verdict"] for v in report["verdicts"]}
    if name == "alexa-app.pcapng":
        assert {"stale_endpoint", "degraded", "reset", "no_answer"} <= kinds, kinds


def test_the_api_answers_as_the_cli(demo):
    from test_api import Server
    s = Server(str(demo))
    try:
        status, body = s.json("GET", "/api/v1/why?from=1970-01-01&to=2100-01-01&query=tcp")
        assert status == 200, body
        cli = why(demo, "tcp")
        assert body["verdicts"] == cli["verdicts"]
        status, body = s.json("GET", "/api/v1/why?query=tcp%20and")
        assert status == 400 and body["error"]["class"] == "PARSE_UNEXPECTED_EOF", body
    finally:
        assert s.stop() == 0


def why_not(store, kfl, *window, env=None):
    out = run("why-not", "--store", str(store), *(window or WINDOW), "--format", "json", kfl)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def reasons(answer):
    return {(r["reason"], r["node"]): r for r in answer["reasons"]}


def test_why_not_says_when_the_rows_are_elsewhere_in_time(demo):
    first, last = duck(demo, f"""SELECT min({ms('start_ts')}), max({ms('start_ts')}) FROM connections
                                 WHERE is_final AND dst_port = 8081""")[0]
    answer = why_not(demo, "dst.port == 8081", "--from", "2100-01-01", "--to", "2100-01-02")
    r = reasons(answer)
    assert answer["connections"] == 0 and ("outside_window", None) in r, answer
    assert r[("outside_window", None)]["detail"] == {"connections": 1, "dns_lookups": 0}
    assert ("no_capture", None) in r
    # Within the data: it matches, and nothing else is wrong with a capture file of the scene
    # (its ARP frames are not IP, so they explain nothing).
    answer = why_not(demo, "dst.port == 8081")
    assert [x["reason"] for x in answer["reasons"]] == ["matches"] and answer["connections"] == 1
    assert first == last


def test_why_not_names_an_agent_that_stopped(tmp_path):
    """Two nodes: node-b's capture ends a day before the scene. Over the scene's window, node-b's
    agent is silent, with its last report as DuckDB reads it."""
    for tool in ("editcap", "capinfos"):
        assert shutil.which(tool), (f"`{tool}` is missing: apt-get install wireshark-common "
                                    "(tshark brings it; tests/run-all.sh installs tshark)")
    scene = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "capture", "demo", "scene.pcap")
    store = tmp_path / "store"
    assert run("standalone", "--pcap", scene, "--store", str(store), "--node", "node-a").returncode == 0
    t0 = duck(store, "SELECT epoch(min(start_ts)) FROM connections")[0][0]
    first = float(subprocess.run(["capinfos", "-a", "-T", "-r", "-S", os.path.join(PCAPS, "1kxun.pcap")],
                                 capture_output=True, text=True, check=True).stdout.split()[-1])
    shifted = tmp_path / "b.pcap"
    subprocess.run(["editcap", "-t", str(t0 - 86400 - first), os.path.join(PCAPS, "1kxun.pcap"),
                    str(shifted)], check=True, capture_output=True)
    assert run("standalone", "--pcap", str(shifted), "--store", str(store), "--node", "node-b").returncode == 0
    # The last report in the 7 days before the window (1kxun.pcap also has packets stamped
    # years later: those are not "before").
    last_b = duck(store, f"""SELECT max({ms('end_ts')}) FROM read_parquet('{store}/capture_stats/date=*/hour=*/*.parquet')
                             WHERE node = 'node-b' AND epoch(ts) >= {t0 - 60 - 7 * 86400}
                             AND epoch(ts) < {t0 - 60}""")[0][0]
    iso_at = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat()
    answer = why_not(store, "dst.port == 8081", "--from", iso_at(t0 - 60), "--to", iso_at(t0 + 3600))
    r = reasons(answer)
    assert ("agent_silent", "node-b") in r and ("agent_silent", "node-a") not in r, answer
    iso = datetime.datetime.fromtimestamp(last_b / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    assert iso in r[("agent_silent", "node-b")]["explanation"], (iso, r)


def test_insights_rank_what_is_wrong_and_what_is_new(demo):
    out = run("insights", "--store", str(demo), "--format", "json")
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)["items"]
    kinds = [i["kind"] for i in items]
    assert kinds == sorted(kinds, key=["failing", "dns_failing", "new_external", "unnamed_external",
                                       "capture"].index), kinds
    failing = [i for i in items if i["kind"] == "failing"]
    assert len(failing) == 4 and all(i["count"] == 1 for i in failing), failing
    assert any("db.batch.svc.cluster.local" in i["explanation"] for i in items if i["kind"] == "dns_failing")
    # The last hour of data has no hour of data before it: every outside destination is new.
    new = {i["explanation"].split(": ", 1)[1].split(" ")[0]: i["count"] for i in items
           if i["kind"] == "new_external"}
    want = dict(duck(demo, """SELECT CASE WHEN dst_dns_name <> '' THEN dst_dns_name ELSE dst_ip END,
                                     count(*) FROM connections
                              WHERE is_final AND dst_namespace = '' AND dst_node = '' GROUP BY 1"""))
    assert new == want, (new, want)
    unnamed = [i for i in items if i["kind"] == "unnamed_external"]
    assert [i["kfl"] for i in unnamed] == ['!dns and (dst.namespace == "" and dst.node == "" and dst.dns == "" and dst.ip == "203.0.113.99")']
    # Every item's KFL lists the rows it counts.
    for i in items:
        if i["kind"] in ("failing", "new_external", "unnamed_external"):
            finals = [r for r in kfl_rows(demo, i["kfl"]) if r.get("is_final", True)]
            assert len(finals) == i["count"], (i, len(finals))


# -- the why scene: a deleted pod's address reused, a slow and lossy link, no lookup ----------------

@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    work = tmp_path_factory.mktemp("why-scene")
    play = why_scene.Scene(work)
    try:
        play.up()
        play.play(str(work / "scene.pcap"))
    finally:
        play.down()
    play.inventory(str(work / "inventory.json"))
    store = work / "store"
    out = run("standalone", "--pcap", str(work / "scene.pcap"), "--inventory", str(work / "inventory.json"),
              "--store", str(store), "--node", "node-w")
    assert out.returncode == 0, out.stderr
    return store, play.t


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat()


def test_a_deleted_pod_whose_address_was_reused_is_a_stale_endpoint(scene):
    store, t = scene
    report = why(store)
    check_against_duckdb(store, report)
    stale = [v for v in report["verdicts"] if v["verdict"] == "stale_endpoint"]
    assert [(v["source"], v["target"], v["port"]) for v in stale] == [
        ("wl:shop/checkout", f"unknown:{why_scene.STALE_IP}", 8080)], report["verdicts"]
    v = stale[0]
    assert v["failed"] == v["total"] == 3, v
    # Failed only after the deletion, and before the new pod.
    assert t["deleted_s"] * 1000 <= v["first_ms"] and v["last_ms"] <= t["created_s"] * 1000, (v, t)
    cart, pay = why_scene.PODS["cart"][3], why_scene.PODS["payments"][3]
    held = lambda pod, agg: duck(store, f"""SELECT {agg}({ms('start_ts')}) FROM connections
                                            WHERE dst_ip = '{why_scene.STALE_IP}' AND dst_pod = '{pod}'""")[0][0]
    ev = v["evidence"]
    assert (ev["held_before"], ev["held_before_last_ms"]) == (f"shop/{cart}", held(cart, "max")), ev
    assert (ev["held_after"], ev["held_after_first_ms"]) == (f"shop/{pay}", held(pay, "min")), ev
    assert cart in v["explanation"] and pay in v["explanation"], v["explanation"]
    # Before and after, the same client and address worked, under each pod's own name.
    ok = {v["target"]: v["total"] for v in report["verdicts"] if v["verdict"] == "ok" and v["port"] == 8080}
    assert ok.get("wl:shop/cart") == 3 and ok.get("wl:shop/payments") == 3, ok


def test_a_slow_lossy_link_is_degraded_against_its_own_baseline(scene):
    store, t = scene
    start, end = t["slow"], t["slow"] + why_scene.PHASE_S * 1000
    out = run("why", "--store", str(store), "--from", iso(start), "--to", iso(end), "--format", "json",
              "dst.port == 8080")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    v = [v for v in report["verdicts"] if v["target"] == "wl:shop/ledger"]
    assert [x["verdict"] for x in v] == ["degraded"], report["verdicts"]
    ev = v[0]["evidence"]
    pair = "dst_workload = 'ledger' AND src_workload = 'checkout' AND dst_port = 8080 AND is_final"
    median = lambda a, b: duck(store, f"""SELECT median(handshake_rtt_us / 1000.0), count(handshake_rtt_us)
        FROM connections WHERE {pair} AND {between(a, b)}""")[0]
    now, n_now = median(start, end)
    before, n_before = median(start - (end - start), start)
    assert n_now >= 5 and n_before >= 5, (n_now, n_before)
    assert "baseline_rtt_p50_ms" in ev, ("RTT not judged slow", ev, now, before, n_now, n_before)
    assert ev["rtt_p50_ms"] == pytest.approx(now) and ev["baseline_rtt_p50_ms"] == pytest.approx(before), (ev, now, before)
    assert ev["rtt_factor"] >= 3 and "handshake RTT" in v[0]["explanation"], v[0]
    # The bucket's drops: the server's retransmissions, counted as DuckDB counts them.
    r, p = duck(store, f"""SELECT sum(src_retransmits + dst_retransmits), sum(src_packets + dst_packets)
        FROM connections WHERE dst_workload = 'ledger' AND src_workload = 'checkout' AND dst_port = 8080
        AND {between(start, end)}""")[0]
    assert r > 0.02 * p and (ev["retransmits"], ev["packets"]) == (r, p), (ev, r, p)


def between(a, b):
    """`start_ts` in [a, b) epoch ms, as the KFL window compares it (to the microsecond)."""
    return f"epoch_us(start_ts) >= {a * 1000} AND epoch_us(start_ts) < {b * 1000}"


def test_why_not_a_pod_that_was_gone_then(scene):
    store, t = scene
    cart, pay = why_scene.PODS["cart"][3], why_scene.PODS["payments"][3]
    after = ["--from", iso(t["created_s"] * 1000), "--to", iso(t["end"])]
    answer = why_not(store, f'dst.pod == "{cart}"', *after)
    r = reasons(answer)
    assert ("outside_window", None) in r and ("name_elsewhere", None) in r, answer
    elsewhere = r[("name_elsewhere", None)]
    n = duck(store, f"""SELECT count(*) FROM connections WHERE is_final AND (src_pod = '{cart}' OR dst_pod = '{cart}')""")[0][0]
    assert elsewhere["count"] == n == 3, (elsewhere, n)
    assert why_scene.STALE_IP in elsewhere["explanation"] and pay in elsewhere["explanation"], elsewhere
    # The pod at an address it did not have.
    answer = why_not(store, f'dst.pod == "{pay}" and dst.ip == "10.244.9.21"', *after)
    other = reasons(answer)[("other_ip", None)]
    assert other["suggestion"] == f'dst.ip == "{why_scene.STALE_IP}"', other
    assert other["count"] == duck(store, f"""SELECT count(*) FROM connections WHERE is_final AND dst_pod = '{pay}'
        AND {between(t['created_s'] * 1000, t['end'])}""")[0][0]


def test_why_not_typos_sides_and_unknown_names(scene):
    store, t = scene
    ledger = why_scene.PODS["ledger"][3]
    typo = ledger[:-1] + ("a" if ledger[-1] != "a" else "b")
    r = reasons(why_not(store, f'dst.pod == "{typo}"'))
    assert r[("did_you_mean", None)]["suggestion"] == f'dst.pod == "{ledger}"', r
    r = reasons(why_not(store, 'src.workload == "ledger"'))
    side = r[("other_side", None)]
    assert side["suggestion"] == 'dst.workload == "ledger"', side
    assert side["count"] == duck(store, "SELECT count(*) FROM connections WHERE is_final AND dst_workload = 'ledger'")[0][0]
    r = reasons(why_not(store, 'dst.namespace == "qqqzzzxxx"'))
    assert ("unknown_name", None) in r and ("did_you_mean", None) not in r, r


def test_why_not_a_name_empty_where_no_lookup_was_seen(scene):
    store, t = scene
    early = ["--from", iso(t["start"] - 1000), "--to", iso(t["lookup"])]
    for field in ("dst.name", "dst.dns"):
        answer = why_not(store, f'{field} == "{why_scene.NAME}"', *early)
        r = reasons(answer)
        assert answer["connections"] == 0 and ("field_empty", None) in r, answer
        empty = r[("field_empty", None)]
        n = duck(store, f"""SELECT count(*) FROM connections WHERE is_final AND dst_ip = '{why_scene.EXT_IP}'
            AND {between(t['start'] - 1000, t['lookup'])}""")[0][0]
        assert empty["count"] == n == 2, (empty, n)
        assert empty["suggestion"] == f'dst.ip == "{why_scene.EXT_IP}"', empty
        finals = [x for x in kfl_rows_in(store, empty["suggestion"], *early) if x.get("is_final", True)]
        assert len(finals) == n
    # After the lookup, the name is there.
    answer = why_not(store, f'dst.name == "{why_scene.NAME}"', "--from", iso(t["lookup"]), "--to", iso(t["end"]))
    # (The capture skipped an IGMP report: a capture reason, not a name one.)
    names = {"other_ip", "other_side", "name_elsewhere", "field_empty", "did_you_mean", "unknown_name"}
    assert answer["connections"] == 1 and answer["reasons"][0]["reason"] == "matches", answer
    assert not names & {x["reason"] for x in answer["reasons"]}, answer


def kfl_rows_in(store, kfl, *window):
    out = run("query", "--store", str(store), *window, "--format", "json", kfl)
    assert out.returncode == 0, (kfl, out.stderr)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
