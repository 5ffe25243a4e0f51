//! The live Kubernetes watch: `kube` watchers on Pods, Services, EndpointSlices, Nodes,
//! ReplicaSets and Jobs keep a [`ClusterState`], and a fresh [`Inventory`] is published to
//! enrichment (through a [`SharedInventory`]) at most every half second after a change.
//!
//! Deleted pods are kept, with the time they were seen deleted, for `retention`: records arrive
//! at ingest seconds to minutes after their packets, and must be named by whoever held the IP
//! *then*, not by the pod that reuses it now. Pods are keyed by UID, so a StatefulSet pod that
//! comes back under the same name is a new entry. A relist (after a watch expired) that no
//! longer contains a pod counts as its deletion at the time of the relist.
use crate::inventory::{Inventory, Objects, SharedInventory, key};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The objects of one kind, and the relist in progress.
#[derive(Debug)]
struct Objs<K> {
    live: HashMap<String, K>,
    relist: Option<HashSet<String>>,
    synced: bool,
}

impl<K> Default for Objs<K> {
    fn default() -> Self {
        Objs { live: HashMap::new(), relist: None, synced: false }
    }
}

/// UID, else namespace/name.
fn id<K: Resource>(obj: &K) -> String {
    let m = obj.meta();
    m.uid.clone().unwrap_or_else(|| {
        let (ns, name) = key(m);
        format!("{ns}/{name}")
    })
}

impl<K: Resource + Clone> Objs<K> {
    /// Applies one watch event; objects that went away are handed to `gone`.
    fn on(&mut self, event: Event<K>, mut gone: impl FnMut(K)) {
        match event {
            Event::Init => self.relist = Some(HashSet::new()),
            Event::InitApply(obj) => {
                let k = id(&obj);
                if let Some(seen) = &mut self.relist {
                    seen.insert(k.clone());
                }
                self.live.insert(k, obj);
            }
            Event::InitDone => {
                if let Some(seen) = self.relist.take() {
                    let stale: Vec<String> =
                        self.live.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                    for k in stale {
                        if let Some(obj) = self.live.remove(&k) {
                            gone(obj);
                        }
                    }
                }
                self.synced = true;
            }
            Event::Apply(obj) => {
                self.live.insert(id(&obj), obj);
            }
            Event::Delete(obj) => {
                self.live.remove(&id(&obj));
                gone(obj);
            }
        }
    }
}

/// Everything the watch knows.
#[derive(Debug, Default)]
pub struct ClusterState {
    pods: Objs<Pod>,
    /// Deleted pods and when they were seen deleted (ns).
    deleted: Vec<(Pod, i64)>,
    services: Objs<Service>,
    slices: Objs<EndpointSlice>,
    nodes: Objs<Node>,
    replicasets: Objs<ReplicaSet>,
    jobs: Objs<Job>,
}

/// One watch event of any kind (sizes differ, but each lives only while it is applied).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Change {
    /// A pod event.
    Pod(Event<Pod>),
    /// A service event.
    Service(Event<Service>),
    /// An EndpointSlice event.
    Slice(Event<EndpointSlice>),
    /// A node event.
    Node(Event<Node>),
    /// A ReplicaSet event.
    ReplicaSet(Event<ReplicaSet>),
    /// A Job event.
    Job(Event<Job>),
}

impl ClusterState {
    /// Applies one event, seen at `now_ns`.
    pub fn apply(&mut self, change: Change, now_ns: i64) {
        match change {
            Change::Pod(e) => {
                let deleted = &mut self.deleted;
                self.pods.on(e, |pod| {
                    let at = pod
                        .metadata
                        .deletion_timestamp
                        .as_ref()
                        .map_or(now_ns, |t| i64::try_from(t.0.as_nanosecond()).unwrap_or(now_ns))
                        .min(now_ns);
                    deleted.push((pod, at));
                });
            }
            Change::Service(e) => self.services.on(e, drop),
            Change::Slice(e) => self.slices.on(e, drop),
            Change::Node(e) => self.nodes.on(e, drop),
            Change::ReplicaSet(e) => self.replicasets.on(e, drop),
            Change::Job(e) => self.jobs.on(e, drop),
        }
    }

    /// Forgets pods deleted before `before_ns`.
    pub fn prune(&mut self, before_ns: i64) {
        self.deleted.retain(|(_, at)| *at >= before_ns);
    }

    /// True once every kind has been listed.
    pub fn synced(&self) -> bool {
        self.pods.synced
            && self.services.synced
            && self.slices.synced
            && self.nodes.synced
            && self.replicasets.synced
            && self.jobs.synced
    }

    /// The index of what is known now.
    pub fn inventory(&self) -> Inventory {
        let objects = Objects {
            pods: self
                .pods
                .live
                .values()
                .map(|p| (p, None))
                .chain(self.deleted.iter().map(|(p, at)| (p, Some(*at))))
                .collect(),
            services: self.services.live.values().collect(),
            nodes: self.nodes.live.values().collect(),
            replicasets: self.replicasets.live.values().map(|r| (key(&r.metadata), r)).collect(),
            jobs: self.jobs.live.values().map(|j| (key(&j.metadata), j)).collect(),
            slices: self.slices.live.values().collect(),
        };
        let mut inv = Inventory::build(&objects);
        inv.counts = [
            ("Pod", self.pods.live.len()),
            ("Pod (deleted, retained)", self.deleted.len()),
            ("Service", self.services.live.len()),
            ("EndpointSlice", self.slices.live.len()),
            ("Node", self.nodes.live.len()),
            ("ReplicaSet", self.replicasets.live.len()),
            ("Job", self.jobs.live.len()),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
        inv
    }
}

/// Watches the cluster `client` talks to and publishes to `shared` until the future is dropped.
/// `synced` is sent once every kind has been listed (enrichment should wait for it). Watch
/// errors (API server down, expired resource versions) are logged and retried with backoff.
/// Makes `ring` the process's TLS provider (what the kube client's TLS is built with), unless
/// one is installed already. Call before the first kube client: with two providers in the build
/// (the Delta libraries' HTTP client brings aws-lc-rs), rustls no longer picks one by itself.
pub fn install_tls_provider() {
    // An error only says a provider is installed already: then that one is used.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn watch(
    client: kube::Client,
    shared: SharedInventory,
    retention: Duration,
    synced: Option<tokio::sync::oneshot::Sender<()>>,
) {
    fn stream<K>(
        client: &kube::Client,
        wrap: fn(Event<K>) -> Change,
    ) -> futures::stream::BoxStream<'static, Result<Change, watcher::Error>>
    where
        K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
        K::DynamicType: Default,
    {
        watcher::watcher(Api::<K>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .map(move |r| r.map(wrap))
            .boxed()
    }
    let mut events = futures::stream::select_all(vec![
        stream::<Pod>(&client, Change::Pod),
        stream::<Service>(&client, Change::Service),
        stream::<EndpointSlice>(&client, Change::Slice),
        stream::<Node>(&client, Change::Node),
        stream::<ReplicaSet>(&client, Change::ReplicaSet),
        stream::<Job>(&client, Change::Job),
    ]);
    let mut state = ClusterState::default();
    let mut synced = synced;
    let mut dirty = false;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_error: Option<std::time::Instant> = None;
    let retention_ns = i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(change)) => {
                    state.apply(change, now_ns());
                    dirty = true;
                }
                Some(Err(e)) => {
                    if last_error.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        last_error = Some(std::time::Instant::now());
                        tracing::warn!("kubernetes watch: {e} (retrying)");
                    }
                }
                None => return,
            },
            _ = tick.tick() => {
                state.prune(now_ns().saturating_sub(retention_ns));
                if dirty && state.synced() {
                    let inv = state.inventory();
                    tracing::debug!(addresses = inv.len(), objects = ?inv.counts, "inventory updated from the watch");
                    shared.set(inv);
                    dirty = false;
                    if let Some(tx) = synced.take() {
                        tracing::info!(objects = ?shared.get().counts, "Kubernetes watch synced.");
                        let _ = tx.send(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, name: &str, ip: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"uid": uid, "name": name, "namespace": "ns",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": []},
            "status": {"phase": "Running", "podIP": ip},
        }))
        .unwrap()
    }

    #[test]
    fn a_relist_without_a_pod_is_its_deletion_and_retention_forgets_it() {
        let t0 = 1_800_000_000_000_000_000;
        let mut s = ClusterState::default();
        for kind in [
            Change::Service(Event::InitDone),
            Change::Slice(Event::InitDone),
            Change::Node(Event::InitDone),
            Change::ReplicaSet(Event::InitDone),
            Change::Job(Event::InitDone),
        ] {
            s.apply(kind, t0);
        }
        s.apply(Change::Pod(Event::Init), t0);
        s.apply(Change::Pod(Event::InitApply(pod("a", "a", "10.0.0.1"))), t0);
        s.apply(Change::Pod(Event::InitApply(pod("b", "b", "10.0.0.2"))), t0);
        assert!(!s.synced());
        s.apply(Change::Pod(Event::InitDone), t0);
        assert!(s.synced());
        // The watch expired; the relist no longer has `a`.
        let t1 = t0 + 60_000_000_000;
        s.apply(Change::Pod(Event::Init), t1);
        s.apply(Change::Pod(Event::InitApply(pod("b", "b", "10.0.0.2"))), t1);
        s.apply(Change::Pod(Event::InitDone), t1);
        let inv = s.inventory();
        assert_eq!(inv.counts["Pod"], 1);
        assert_eq!(inv.counts["Pod (deleted, retained)"], 1);
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(inv.lookup(a, t1 - 1).unwrap().pod, "a");
        // Retention passes: forgotten.
        s.prune(t1 + 1);
        assert!(s.inventory().lookup(a, t1 - 1).is_none());
    }
}
