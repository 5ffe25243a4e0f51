//! Pod metadata from an inventory file: what `kubectl get pods,services,nodes -A -o json` (or
//! `-o yaml`) prints, optionally with ReplicaSets, Jobs, StatefulSets and DaemonSets in the same
//! list. It becomes a time-aware index from IP to identity.
//!
//! - Pods (not `hostNetwork`: those share the node's IP, which names the node) by every pod IP,
//!   valid from creation until deletion, or until the last container finished for a Succeeded or
//!   Failed pod: a completed Job pod that keeps its IP does not take the name of a newer pod that
//!   reuses it.
//! - Workload through ownerReferences: ReplicaSet → Deployment (from the listed ReplicaSet, or
//!   when ReplicaSets are not listed, by stripping the `pod-template-hash` suffix), StatefulSet,
//!   DaemonSet, Job → CronJob (from the listed Job, or a Job named `<cronjob>-<8+ digits>`).
//!   A pod without an owner is its own workload (kind `Pod`).
//! - Service of a pod: the first service (by name) in its namespace whose selector matches the
//!   pod's labels. ClusterIPs are named by their service.
//! - Nodes by their InternalIP and ExternalIP addresses.
//! - EndpointSlices: the service of each endpoint pod (wins over selector matching, and covers
//!   services without a selector); endpoints that are not pods are named by their service.
//!
//! The same index is built from the live watch ([`crate::kube_watch`]).
use crate::error::{Error, Result};
use hashbrown::HashMap;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use podwire_schemas::EndpointMeta;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// Who held an IP during `[from_ns, to_ns)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The metadata; `name` is the pod's or service's name, `''` for a node address.
    pub meta: EndpointMeta,
    /// Start of validity, ns since the epoch (`i64::MIN` when unknown).
    pub from_ns: i64,
    /// End of validity (`i64::MAX` while it lasts).
    pub to_ns: i64,
    /// The pod's labels (empty for services and nodes): for pod targeting by label.
    pub labels: Arc<BTreeMap<String, String>>,
}

/// The objects an [`Inventory`] is built from, borrowed (from a parsed file, or from the live
/// watch's state).
#[derive(Debug, Default)]
pub struct Objects<'a> {
    /// Pods, each with the time it was seen deleted (ns), if it was.
    pub pods: Vec<(&'a Pod, Option<i64>)>,
    /// Services.
    pub services: Vec<&'a Service>,
    /// Nodes.
    pub nodes: Vec<&'a Node>,
    /// ReplicaSets by (namespace, name).
    pub replicasets: HashMap<(String, String), &'a ReplicaSet>,
    /// Jobs by (namespace, name).
    pub jobs: HashMap<(String, String), &'a Job>,
    /// EndpointSlices.
    pub slices: Vec<&'a EndpointSlice>,
}

/// (namespace, name) of an object.
pub fn key(m: &ObjectMeta) -> (String, String) {
    (m.namespace.clone().unwrap_or_default(), m.name.clone().unwrap_or_default())
}

/// The IP → identity index.
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    by_ip: HashMap<IpAddr, Vec<Identity>>,
    /// Objects read, by kind.
    pub counts: BTreeMap<String, usize>,
}

/// The inventory enrichment reads, replaced whole by the watch.
#[derive(Debug, Clone, Default)]
pub struct SharedInventory(Arc<RwLock<Arc<Inventory>>>);

impl SharedInventory {
    /// A handle holding `inventory`.
    pub fn new(inventory: Inventory) -> Self {
        SharedInventory(Arc::new(RwLock::new(Arc::new(inventory))))
    }

    /// The current inventory.
    pub fn get(&self) -> Arc<Inventory> {
        Arc::clone(&self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Replaces the inventory.
    pub fn set(&self, inventory: Inventory) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(inventory);
    }
}

fn time_ns(t: &Option<Time>) -> Option<i64> {
    t.as_ref().map(|t| i64::try_from(t.0.as_nanosecond()).unwrap_or(i64::MAX))
}

fn controller(refs: &Option<Vec<OwnerReference>>) -> Option<&OwnerReference> {
    let refs = refs.as_ref()?;
    refs.iter().find(|r| r.controller == Some(true)).or_else(|| refs.first())
}

/// `report-29000000` → `report`: CronJobs name their Jobs after the scheduled minute.
fn cronjob_of_job_name(job: &str) -> Option<&str> {
    let (prefix, suffix) = job.rsplit_once('-')?;
    (suffix.len() >= 8 && suffix.bytes().all(|b| b.is_ascii_digit()) && !prefix.is_empty())
        .then_some(prefix)
}

impl Inventory {
    /// Reads an inventory file (JSON or YAML, a `List` or a single object).
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Inventory`] naming what is wrong.
    pub fn from_file(path: &Path) -> Result<Inventory> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.into(), source })?;
        Self::from_text(&text).map_err(|what| Error::Inventory { path: path.into(), what })
    }

    /// Parses inventory text (JSON or YAML).
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn from_text(text: &str) -> std::result::Result<Inventory, String> {
        let value: serde_json::Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
        } else {
            serde_yaml::from_str(text).map_err(|e| format!("not valid JSON or YAML: {e}"))?
        };
        let items = match value.get("items").and_then(|i| i.as_array()) {
            Some(items) => items.clone(),
            None if value.get("kind").is_some() => vec![value],
            None => return Err("expected a `List` with `items`, or a Kubernetes object".into()),
        };
        let mut pods = Vec::new();
        let mut services = Vec::new();
        let mut nodes = Vec::new();
        let mut replicasets = Vec::new();
        let mut jobs = Vec::new();
        let mut slices = Vec::new();
        let mut counts = BTreeMap::new();
        for (i, item) in items.into_iter().enumerate() {
            let kind = item.get("kind").and_then(|k| k.as_str()).unwrap_or("").to_string();
            let bad = |e: serde_json::Error| format!("item {i} (kind `{kind}`): {e}");
            match kind.as_str() {
                "Pod" => pods.push(serde_json::from_value::<Pod>(item).map_err(bad)?),
                "Service" => services.push(serde_json::from_value::<Service>(item).map_err(bad)?),
                "Node" => nodes.push(serde_json::from_value::<Node>(item).map_err(bad)?),
                "ReplicaSet" => {
                    replicasets.push(serde_json::from_value::<ReplicaSet>(item).map_err(bad)?);
                }
                "Job" => jobs.push(serde_json::from_value::<Job>(item).map_err(bad)?),
                "EndpointSlice" => {
                    slices.push(serde_json::from_value::<EndpointSlice>(item).map_err(bad)?);
                }
                _ => {}
            }
            *counts.entry(kind).or_insert(0) += 1;
        }
        let objects = Objects {
            pods: pods.iter().map(|p| (p, None)).collect(),
            services: services.iter().collect(),
            nodes: nodes.iter().collect(),
            replicasets: replicasets.iter().map(|r| (key(&r.metadata), r)).collect(),
            jobs: jobs.iter().map(|j| (key(&j.metadata), j)).collect(),
            slices: slices.iter().collect(),
        };
        let mut inv = Inventory::build(&objects);
        inv.counts = counts;
        Ok(inv)
    }

    /// The index of a set of objects: pods (with the time each was seen deleted, if it was),
    /// services, nodes, EndpointSlices, and the ReplicaSets and Jobs that name workloads.
    pub fn build(objects: &Objects<'_>) -> Inventory {
        let mut inv = Inventory::default();
        for svc in &objects.services {
            let Some(spec) = &svc.spec else { continue };
            let mut ips: Vec<&String> = spec.cluster_ips.iter().flatten().collect();
            if let Some(ip) = &spec.cluster_ip {
                ips.push(ip);
            }
            let name = svc.metadata.name.clone().unwrap_or_default();
            let meta = EndpointMeta {
                name: name.clone(),
                namespace: svc.metadata.namespace.clone().unwrap_or_default(),
                service: name,
                ..Default::default()
            };
            for ip in ips {
                if let Ok(ip) = ip.parse::<IpAddr>() {
                    inv.add(
                        ip,
                        Identity {
                            meta: meta.clone(),
                            from_ns: i64::MIN,
                            to_ns: i64::MAX,
                            labels: Arc::default(),
                        },
                    );
                }
            }
        }
        for node in &objects.nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let addrs = node.status.as_ref().and_then(|s| s.addresses.as_ref());
            for a in addrs.into_iter().flatten() {
                if (a.type_ == "InternalIP" || a.type_ == "ExternalIP")
                    && let Ok(ip) = a.address.parse::<IpAddr>()
                {
                    let meta = EndpointMeta { node: name.clone(), ..Default::default() };
                    inv.add(
                        ip,
                        Identity {
                            meta,
                            from_ns: i64::MIN,
                            to_ns: i64::MAX,
                            labels: Arc::default(),
                        },
                    );
                }
            }
        }
        // EndpointSlices: the service of each endpoint pod (also for services without a
        // selector), and a name for endpoints that are not pods (e.g. an external database
        // behind a selector-less service).
        let mut slice_service: HashMap<(String, String), String> = HashMap::new();
        for slice in &objects.slices {
            let ns = slice.metadata.namespace.clone().unwrap_or_default();
            let Some(service) =
                slice.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name"))
            else {
                continue;
            };
            for ep in &slice.endpoints {
                match &ep.target_ref {
                    Some(t) if t.kind.as_deref() == Some("Pod") => {
                        if let Some(pod) = &t.name {
                            slice_service
                                .entry((ns.clone(), pod.clone()))
                                .and_modify(|s| {
                                    if service < s {
                                        s.clone_from(service);
                                    }
                                })
                                .or_insert_with(|| service.clone());
                        }
                    }
                    _ => {
                        let meta = EndpointMeta {
                            name: service.clone(),
                            namespace: ns.clone(),
                            service: service.clone(),
                            ..Default::default()
                        };
                        for ip in ep.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                            inv.add(
                                ip,
                                Identity {
                                    meta: meta.clone(),
                                    from_ns: i64::MIN,
                                    to_ns: i64::MAX,
                                    labels: Arc::default(),
                                },
                            );
                        }
                    }
                }
            }
        }
        for (pod, deleted_ns) in &objects.pods {
            if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
                continue;
            }
            let Some(status) = &pod.status else { continue };
            let mut ips: Vec<&str> =
                status.pod_ips.iter().flatten().map(|p| p.ip.as_str()).collect();
            if let Some(ip) = &status.pod_ip {
                ips.push(ip);
            }
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let (workload, workload_kind) = workload_of(pod, &objects.replicasets, &objects.jobs);
            let service = slice_service
                .get(&(namespace.clone(), name.clone()))
                .cloned()
                .unwrap_or_else(|| service_of(pod, &objects.services));
            let meta = EndpointMeta {
                name: name.clone(),
                namespace,
                pod: name,
                workload,
                workload_kind,
                service,
                node: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
            };
            let from_ns = time_ns(&pod.metadata.creation_timestamp)
                .or_else(|| time_ns(&status.start_time))
                .unwrap_or(i64::MIN);
            let finished = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
            let finished_at = status
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.clone())
                .filter_map(|t| time_ns(&Some(t)))
                .max();
            let to_ns = match (finished, finished_at) {
                (true, Some(t)) => t,
                _ => time_ns(&pod.metadata.deletion_timestamp).unwrap_or(i64::MAX),
            };
            // Seen deleted: gone from then at the latest.
            let to_ns = deleted_ns.map_or(to_ns, |d| to_ns.min(d));
            let labels = Arc::new(pod.metadata.labels.clone().unwrap_or_default());
            for ip in ips {
                if let Ok(ip) = ip.parse::<IpAddr>() {
                    let labels = Arc::clone(&labels);
                    inv.add(ip, Identity { meta: meta.clone(), from_ns, to_ns, labels });
                }
            }
        }
        inv
    }

    fn add(&mut self, ip: IpAddr, id: Identity) {
        let v = self.by_ip.entry(ip).or_default();
        if !v.contains(&id) {
            v.push(id);
        }
    }

    /// Addresses known.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// True when no address is known.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// The addresses whose identity at `ts_ns` ([`Self::identity`]) satisfies `pred`: pod
    /// targeting resolves `namespace`/`workload`/`service`/`pod`/`label` selectors with it.
    pub fn addresses_where(&self, ts_ns: i64, pred: impl Fn(&Identity) -> bool) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .by_ip
            .keys()
            .filter(|ip| self.identity(**ip, ts_ns).is_some_and(&pred))
            .copied()
            .collect();
        v.sort();
        v
    }

    /// Who held `ip` at `ts_ns`: the identity valid then (the latest-starting one if several;
    /// pods win over services and nodes at the same address). When none was valid then:
    /// before everything known of the address, the earliest identity (an inventory is a
    /// snapshot, and a capture may predate it); after a known end (a deletion, a finished pod)
    /// or between two holders, nobody: the pod was gone then, and naming it would hide a stale
    /// endpoint.
    pub fn lookup(&self, ip: IpAddr, ts_ns: i64) -> Option<&EndpointMeta> {
        self.identity(ip, ts_ns).map(|id| &id.meta)
    }

    /// The identity [`Self::lookup`] takes the metadata from.
    pub fn identity(&self, ip: IpAddr, ts_ns: i64) -> Option<&Identity> {
        let ids = self.by_ip.get(&ip)?;
        let valid = ids
            .iter()
            .filter(|id| id.from_ns <= ts_ns && ts_ns < id.to_ns)
            .min_by_key(|id| (id.meta.pod.is_empty(), std::cmp::Reverse(id.from_ns)));
        if valid.is_some() || ids.iter().any(|id| id.from_ns <= ts_ns) {
            return valid;
        }
        ids.iter().min_by_key(|id| (id.from_ns, id.meta.pod.is_empty()))
    }
}

fn workload_of(
    pod: &Pod,
    replicasets: &HashMap<(String, String), &ReplicaSet>,
    jobs: &HashMap<(String, String), &Job>,
) -> (String, String) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let Some(owner) = controller(&pod.metadata.owner_references) else {
        return (pod.metadata.name.clone().unwrap_or_default(), "Pod".into());
    };
    match owner.kind.as_str() {
        "ReplicaSet" => {
            if let Some(rs) = replicasets.get(&(ns, owner.name.clone())) {
                if let Some(d) = controller(&rs.metadata.owner_references) {
                    return (d.name.clone(), d.kind.clone());
                }
                return (owner.name.clone(), "ReplicaSet".into());
            }
            let hash = pod.metadata.labels.as_ref().and_then(|l| l.get("pod-template-hash"));
            match hash.and_then(|h| owner.name.strip_suffix(h.as_str())?.strip_suffix('-')) {
                Some(deploy) => (deploy.to_string(), "Deployment".into()),
                None => (owner.name.clone(), "ReplicaSet".into()),
            }
        }
        "Job" => {
            if let Some(job) = jobs.get(&(ns, owner.name.clone())) {
                if let Some(c) = controller(&job.metadata.owner_references) {
                    return (c.name.clone(), c.kind.clone());
                }
                return (owner.name.clone(), "Job".into());
            }
            match cronjob_of_job_name(&owner.name) {
                Some(cron) => (cron.to_string(), "CronJob".into()),
                None => (owner.name.clone(), "Job".into()),
            }
        }
        _ => (owner.name.clone(), owner.kind.clone()),
    }
}

fn service_of(pod: &Pod, services: &[&Service]) -> String {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let labels = pod.metadata.labels.as_ref();
    let mut matching: Vec<&str> = services
        .iter()
        .filter(|s| s.metadata.namespace.as_deref().unwrap_or("") == ns)
        .filter(|s| {
            let Some(sel) = s.spec.as_ref().and_then(|sp| sp.selector.as_ref()) else {
                return false;
            };
            !sel.is_empty() && sel.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .filter_map(|s| s.metadata.name.as_deref())
        .collect();
    matching.sort_unstable();
    matching.first().map(|s| s.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"apiVersion":"v1","kind":"List","items":[
      {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-5d9c8b7f6d-abcde","namespace":"shop",
        "creationTimestamp":"2026-01-01T00:00:00Z","labels":{"app":"web","pod-template-hash":"5d9c8b7f6d"},
        "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-5d9c8b7f6d","uid":"u1","controller":true}]},
       "spec":{"nodeName":"node-a","containers":[]},"status":{"phase":"Running","podIP":"10.0.0.5"}},
      {"apiVersion":"v1","kind":"Pod","metadata":{"name":"report-29000000-xyz","namespace":"batch",
        "creationTimestamp":"2026-01-01T00:00:00Z",
        "ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"report-29000000","uid":"u2","controller":true}]},
       "spec":{"nodeName":"node-a","containers":[]},"status":{"phase":"Succeeded","podIP":"10.0.0.9",
        "containerStatuses":[{"name":"c","image":"i","imageID":"","ready":false,"restartCount":0,
          "state":{"terminated":{"exitCode":0,"finishedAt":"2026-01-01T01:00:00Z"}}}]}},
      {"apiVersion":"v1","kind":"Pod","metadata":{"name":"db-0","namespace":"shop",
        "creationTimestamp":"2026-01-01T02:00:00Z",
        "ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","uid":"u3","controller":true}]},
       "spec":{"nodeName":"node-b","containers":[]},"status":{"phase":"Running","podIP":"10.0.0.9"}},
      {"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop"},
       "spec":{"clusterIP":"10.96.0.20","selector":{"app":"web"}}},
      {"apiVersion":"v1","kind":"Node","metadata":{"name":"node-a"},
       "status":{"addresses":[{"type":"InternalIP","address":"192.168.1.10"}]}}
    ]}"#;

    fn ns(t: &str) -> i64 {
        i64::try_from(t.parse::<jiff::Timestamp>().unwrap().as_nanosecond()).unwrap()
    }

    #[test]
    fn names_pods_services_nodes_and_workloads() {
        let inv = Inventory::from_text(LIST).unwrap();
        let t = ns("2026-01-01T00:30:00Z");
        let web = inv.lookup("10.0.0.5".parse().unwrap(), t).unwrap();
        assert_eq!(web.pod, "web-5d9c8b7f6d-abcde");
        assert_eq!((web.workload.as_str(), web.workload_kind.as_str()), ("web", "Deployment"));
        assert_eq!(web.service, "web");
        assert_eq!(web.node, "node-a");
        let svc = inv.lookup("10.96.0.20".parse().unwrap(), t).unwrap();
        assert_eq!((svc.name.as_str(), svc.service.as_str(), svc.pod.as_str()), ("web", "web", ""));
        let node = inv.lookup("192.168.1.10".parse().unwrap(), t).unwrap();
        assert_eq!((node.name.as_str(), node.node.as_str()), ("", "node-a"));
    }

    #[test]
    fn completed_job_pod_keeps_its_ip_only_until_it_finished() {
        let inv = Inventory::from_text(LIST).unwrap();
        let ip = "10.0.0.9".parse().unwrap();
        let during = inv.lookup(ip, ns("2026-01-01T00:30:00Z")).unwrap();
        assert_eq!(during.pod, "report-29000000-xyz");
        assert_eq!(
            (during.workload.as_str(), during.workload_kind.as_str()),
            ("report", "CronJob")
        );
        let after = inv.lookup(ip, ns("2026-01-01T03:00:00Z")).unwrap();
        assert_eq!(after.pod, "db-0");
        assert_eq!(after.workload_kind, "StatefulSet");
        // Between the Job's end (01:00) and db-0's start (02:00): nobody held it.
        assert_eq!(inv.lookup(ip, ns("2026-01-01T01:20:00Z")), None);
        // Before anything known of the address (a capture older than the snapshot): the
        // earliest holder.
        let before = inv.lookup(ip, ns("2025-12-31T00:00:00Z")).unwrap();
        assert_eq!(before.pod, "report-29000000-xyz");
    }

    #[test]
    fn yaml_is_accepted_and_garbage_is_explained() {
        let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a, namespace: b}\n  spec: {clusterIP: 10.1.2.3}\n";
        let inv = Inventory::from_text(yaml).unwrap();
        assert_eq!(inv.lookup("10.1.2.3".parse().unwrap(), 0).unwrap().name, "a");
        let err = Inventory::from_text("[1,2").unwrap_err();
        assert!(err.contains("not valid"), "{err}");
        let err = Inventory::from_text("{\"foo\": 1}").unwrap_err();
        assert!(err.contains("List"), "{err}");
    }
}
