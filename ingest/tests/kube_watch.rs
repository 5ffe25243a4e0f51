//! The real watch code (`kube` watchers → `ClusterState` → published `Inventory`) against a fake
//! Kubernetes API server on loopback: lists, then watch events (a pod deleted and its IP reused
//! by a new pod, a StatefulSet pod taking the IP a completed Job pod kept), services, a
//! selector-less service's EndpointSlice, nodes.
//!
//! Every request the watch makes is recorded as RBAC sees it, (API group, resource, verb), and
//! written as JSON to `$PODWIRE_KUBE_REQUESTS_OUT` when set: the Helm chart's ClusterRole is
//! checked against that list (tests/python/test_deploy.py), so it grants what the code asks for.
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use podwire_ingest::inventory::SharedInventory;
use podwire_ingest::kube_watch::watch;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn ts(s: i64) -> String {
    jiff::Timestamp::from_second(s).unwrap().to_string()
}

fn ns(s: i64) -> i64 {
    s * 1_000_000_000
}

/// One resource of the fake server: its list, and the watch events sent to the first watcher.
struct Resource {
    kind: &'static str,
    api_version: &'static str,
    items: Vec<Value>,
    watch: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

type Resources = Arc<HashMap<&'static str, Resource>>;

/// (API group, resource, verb) of every request the server got.
type Requests = Arc<Mutex<BTreeSet<(String, String, String)>>>;

/// The RBAC view of a request: `/api/v1/pods` is ("", "pods"), and
/// `/apis/apps/v1/namespaces/shop/replicasets/web` is ("apps", "replicasets") with a name;
/// `?watch=true` makes a watch, a name a get, else a list. Any other path is kept whole, so it
/// cannot pass unnoticed.
fn rbac_request(uri: &Uri) -> (String, String, String) {
    let path: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (group, rest) = match path.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return (String::new(), uri.path().to_string(), "get".to_string()),
    };
    let rest = match rest {
        ["namespaces", _namespace, rest @ ..] if !rest.is_empty() => rest,
        rest => rest,
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
        [] => (String::new(), false),
    };
    let watch =
        uri.query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = if watch {
        "watch"
    } else if named {
        "get"
    } else {
        "list"
    };
    (group.to_string(), resource, verb.to_string())
}

async fn record(State(requests): State<Requests>, request: Request, next: Next) -> Response {
    requests.lock().unwrap().insert(rbac_request(request.uri()));
    next.run(request).await
}

async fn serve(
    State((res, path)): State<(Resources, &'static str)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = &res[path];
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let rx = r.watch.lock().unwrap().take();
        let stream = futures::stream::unfold(rx, |rx| async move {
            match rx {
                Some(mut rx) => {
                    let line = rx.recv().await?;
                    Some((Ok::<_, std::convert::Infallible>(line + "\n"), Some(rx)))
                }
                // A second watch (after a reconnect): nothing more to say.
                None => {
                    futures::future::pending::<()>().await;
                    None
                }
            }
        });
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    let list = json!({
        "apiVersion": r.api_version,
        "kind": format!("{}List", r.kind),
        "metadata": {"resourceVersion": "100"},
        "items": r.items,
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(list.to_string()))
        .unwrap()
}

fn pod(uid: &str, ns_: &str, name: &str, ip: &str, created: i64, extra: Value) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"uid": uid, "name": name, "namespace": ns_, "resourceVersion": "1",
                     "creationTimestamp": ts(created)},
        "spec": {"nodeName": "node-a", "containers": []},
        "status": {"phase": "Running", "podIP": ip},
    });
    merge(&mut p, extra);
    p
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_names_ips_by_who_held_them_then() {
    let t = now_s();
    let web1 = pod(
        "a",
        "shop",
        "web-5d9c8b7f6d-aaaaa",
        "10.0.0.5",
        t - 3600,
        json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "5d9c8b7f6d"},
               "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                 "name": "web-5d9c8b7f6d", "uid": "rs", "controller": true}]}}),
    );
    let job = pod(
        "j",
        "batch",
        "report-29000000-xyz",
        "10.0.0.9",
        t - 3000,
        json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                 "name": "report-29000000", "uid": "job", "controller": true}]},
               "status": {"phase": "Succeeded", "containerStatuses": [{"name": "c", "image": "i",
                 "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "finishedAt": ts(t - 1800)}}}]}}),
    );
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "uid": "s1", "resourceVersion": "1"},
        "spec": {"clusterIP": "10.96.0.20", "selector": {"app": "web"}}});
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "legacy-db-abc", "namespace": "shop", "uid": "e1", "resourceVersion": "1",
                     "labels": {"kubernetes.io/service-name": "legacy-db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.50"]}]});
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-a", "uid": "n1", "resourceVersion": "1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.10"}]}});

    let mut senders = HashMap::new();
    let mut resources = HashMap::new();
    for (path, kind, api_version, items) in [
        ("/api/v1/pods", "Pod", "v1", vec![web1.clone(), job]),
        ("/api/v1/services", "Service", "v1", vec![service]),
        ("/api/v1/nodes", "Node", "v1", vec![node]),
        (
            "/apis/discovery.k8s.io/v1/endpointslices",
            "EndpointSlice",
            "discovery.k8s.io/v1",
            vec![slice],
        ),
        ("/apis/apps/v1/replicasets", "ReplicaSet", "apps/v1", vec![]),
        ("/apis/batch/v1/jobs", "Job", "batch/v1", vec![]),
    ] {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.insert(path, tx);
        resources.insert(path, Resource { kind, api_version, items, watch: Mutex::new(Some(rx)) });
    }
    let resources: Resources = Arc::new(resources);
    let requests = Requests::default();
    let mut app = Router::new();
    for path in resources.keys().copied() {
        app = app.route(path, get(serve).with_state((Arc::clone(&resources), path)));
    }
    // After the routes, so that it also sees requests no route serves.
    let app = app.layer(axum::middleware::from_fn_with_state(Arc::clone(&requests), record));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    podwire_ingest::kube_watch::install_tls_provider();
    let client = kube::Client::try_from(config).unwrap();
    let shared = SharedInventory::default();
    let (tx, synced) = tokio::sync::oneshot::channel();
    tokio::spawn(watch(client, shared.clone(), Duration::from_secs(3600), Some(tx)));
    tokio::time::timeout(Duration::from_secs(30), synced)
        .await
        .expect("the watch did not sync within 30 s")
        .unwrap();

    let name = |ip: &str, at_s: i64| -> String {
        shared
            .get()
            .lookup(ip.parse().unwrap(), ns(at_s))
            .map(|m| m.name.clone())
            .unwrap_or_default()
    };
    // From the lists.
    assert_eq!(name("10.0.0.5", t - 60), "web-5d9c8b7f6d-aaaaa");
    let inv = shared.get();
    let web = inv.lookup("10.0.0.5".parse().unwrap(), ns(t)).unwrap();
    assert_eq!((web.workload.as_str(), web.workload_kind.as_str()), ("web", "Deployment"));
    assert_eq!(web.service, "web");
    assert_eq!(name("10.96.0.20", t), "web");
    assert_eq!(name("192.0.2.50", t), "legacy-db");
    assert_eq!(inv.lookup("192.168.1.10".parse().unwrap(), ns(t)).unwrap().node, "node-a");

    // Watch events: web-1 deleted 10 minutes ago, its IP reused by web-2 5 minutes ago; db-0
    // takes the IP the completed Job pod kept.
    let mut deleted = web1;
    merge(
        &mut deleted,
        json!({"metadata": {"deletionTimestamp": ts(t - 600), "resourceVersion": "2"}}),
    );
    let event = |kind: &str, obj: &Value| json!({"type": kind, "object": obj}).to_string();
    let pods = &senders["/api/v1/pods"];
    pods.send(event("DELETED", &deleted)).unwrap();
    let web2 = pod(
        "b",
        "shop",
        "web-5d9c8b7f6d-bbbbb",
        "10.0.0.5",
        t - 300,
        json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "5d9c8b7f6d"}}}),
    );
    pods.send(event("ADDED", &web2)).unwrap();
    let db = pod(
        "d",
        "shop",
        "db-0",
        "10.0.0.9",
        t - 60,
        json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                 "name": "db", "uid": "sts", "controller": true}]}}),
    );
    pods.send(event("ADDED", &db)).unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while name("10.0.0.9", t) != "db-0" || name("10.0.0.5", t) != "web-5d9c8b7f6d-bbbbb" {
        assert!(tokio::time::Instant::now() < deadline, "the watch events were not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Records from before the changes keep the names of who held the IPs then.
    assert_eq!(name("10.0.0.5", t - 1200), "web-5d9c8b7f6d-aaaaa", "deleted pod, retained");
    assert_eq!(name("10.0.0.5", t - 100), "web-5d9c8b7f6d-bbbbb");
    assert_eq!(name("10.0.0.9", t - 2000), "report-29000000-xyz", "the Job pod while it ran");
    assert_eq!(name("10.0.0.9", t - 30), "db-0", "not the completed Job pod");
    let inv = shared.get();
    assert_eq!(inv.counts["Pod (deleted, retained)"], 1);
    assert_eq!(
        inv.lookup("10.0.0.9".parse().unwrap(), ns(t)).unwrap().workload_kind,
        "StatefulSet"
    );

    write_requests(&requests).await;
}

/// Writes the recorded requests to `$PODWIRE_KUBE_REQUESTS_OUT` once every kind listed is also
/// watched (the watches start just after the lists).
async fn write_requests(requests: &Requests) {
    let Ok(out) = std::env::var("PODWIRE_KUBE_REQUESTS_OUT") else { return };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let seen = requests.lock().unwrap().clone();
        let unwatched = seen.iter().any(|(g, r, v)| {
            v == "list" && !seen.contains(&(g.clone(), r.clone(), "watch".to_string()))
        });
        if !unwatched || tokio::time::Instant::now() >= deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rows: Vec<Value> = seen
        .iter()
        .map(|(group, resource, verb)| json!({"group": group, "resource": resource, "verb": verb}))
        .collect();
    std::fs::write(&out, serde_json::to_string_pretty(&rows).unwrap() + "\n")
        .unwrap_or_else(|e| panic!("cannot write {out}: {e}"));
}
