//! The real watch code (`kube` watchers → `ClusterState` → published `Inventory`) against a fake
//! Kubernetes API server on loopback: lists, then watch events (a pod deleted and its IP reused
//! by a new pod, a StatefulSet pod taking the IP a completed Job pod kept), services, a
//! selector-less service's EndpointSlice, nodes.
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use podwire_ingest::inventory::SharedInventory;
use podwire_ingest::kube_watch::watch;
use serde_json::{Value, json};
use std::collections::HashMap;
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
    let mut app = Router::new();
    for path in resources.keys().copied() {
        app = app.route(path, get(serve).with_state((Arc::clone(&resources), path)));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
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
}
