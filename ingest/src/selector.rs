//! Pod selectors of the live capture's filter (`namespace web`, `workload Deployment/api`,
//! `label app=web,tier=front`, …), typed, and matched against an inventory [`Identity`]: the
//! capture agent turns them into the addresses the kernel filters on
//! ([`crate::inventory::Inventory::addresses_where`]).
use crate::inventory::Identity;

/// One selector. The kinds and their text are those of a filter file or `--only-*` flag.
#[derive(Debug, Clone)]
pub enum PodSelector {
    /// Every pod (what exclusions are taken from).
    EveryPod,
    /// Pods of a namespace.
    Namespace(String),
    /// Pods of a workload: `NAME`, or `Kind/NAME` (the kind compared without case).
    Workload {
        /// `Deployment`, `StatefulSet`, … when given.
        kind: Option<String>,
        /// The workload's name.
        name: String,
    },
    /// Pods behind a service (and its ClusterIP).
    Service(String),
    /// One pod by name.
    Pod(String),
    /// Pods whose name matches.
    PodRegex(regex::Regex),
    /// Pods with every one of these labels (`KEY=VALUE`, or `KEY` for "has it"): a Kubernetes
    /// equality selector.
    Label(Vec<(String, Option<String>)>),
}

impl PodSelector {
    /// The selector of `kind` (`namespace`, `workload`, `service`, `pod`, `pod-regex`, `label`)
    /// with `value`.
    ///
    /// # Errors
    /// An unknown kind, or a `pod-regex` that is not a regular expression, said so.
    pub fn parse(kind: &str, value: &str) -> Result<Self, String> {
        Ok(match kind {
            "namespace" => PodSelector::Namespace(value.into()),
            "workload" => match value.split_once('/') {
                Some((k, n)) => PodSelector::Workload { kind: Some(k.into()), name: n.into() },
                None => PodSelector::Workload { kind: None, name: value.into() },
            },
            "service" => PodSelector::Service(value.into()),
            "pod" => PodSelector::Pod(value.into()),
            "pod-regex" => PodSelector::PodRegex(
                regex::Regex::new(value)
                    .map_err(|e| format!("pod-regex `{value}` is not a regular expression: {e}"))?,
            ),
            "label" => PodSelector::Label(
                value
                    .split(',')
                    .map(|pair| match pair.split_once('=') {
                        Some((k, v)) => (k.trim().to_string(), Some(v.trim().to_string())),
                        None => (pair.trim().to_string(), None),
                    })
                    .collect(),
            ),
            other => {
                return Err(format!(
                    "unknown pod selector `{other}`: use namespace, workload, service, pod, \
                     pod-regex or label"
                ));
            }
        })
    }

    /// Whether `id` is selected.
    pub fn matches(&self, id: &Identity) -> bool {
        let m = &id.meta;
        match self {
            PodSelector::EveryPod => !m.pod.is_empty(),
            PodSelector::Namespace(ns) => &m.namespace == ns,
            PodSelector::Workload { kind: None, name } => &m.workload == name,
            // `Kind/NAME`; a workload literally named with a slash matches too.
            PodSelector::Workload { kind: Some(k), name } => {
                (m.workload_kind.eq_ignore_ascii_case(k) && &m.workload == name)
                    || m.workload == format!("{k}/{name}")
            }
            PodSelector::Service(s) => &m.service == s,
            PodSelector::Pod(p) => &m.pod == p,
            PodSelector::PodRegex(re) => !m.pod.is_empty() && re.is_match(&m.pod),
            PodSelector::Label(pairs) => pairs.iter().all(|(k, v)| match v {
                Some(v) => id.labels.get(k).is_some_and(|l| l == v),
                None => id.labels.contains_key(k),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podwire_schemas::EndpointMeta;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn pod(ns: &str, name: &str, kind: &str, workload: &str, labels: &[(&str, &str)]) -> Identity {
        Identity {
            meta: EndpointMeta {
                namespace: ns.into(),
                pod: name.into(),
                workload_kind: kind.into(),
                workload: workload.into(),
                ..EndpointMeta::default()
            },
            from_ns: i64::MIN,
            to_ns: i64::MAX,
            labels: Arc::new(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
        }
    }

    fn sel(kind: &str, value: &str) -> PodSelector {
        PodSelector::parse(kind, value).unwrap()
    }

    #[test]
    fn each_kind_selects_what_it_names() {
        let web =
            pod("shop", "web-7d9-x", "Deployment", "web", &[("app", "web"), ("tier", "front")]);
        let db = pod("shop", "db-0", "StatefulSet", "db", &[("app", "db")]);
        let node = Identity { meta: EndpointMeta::default(), ..pod("", "", "", "", &[]) };
        let cases: [(PodSelector, [bool; 3]); 11] = [
            (PodSelector::EveryPod, [true, true, false]),
            (sel("namespace", "shop"), [true, true, false]),
            (sel("workload", "web"), [true, false, false]),
            (sel("workload", "deployment/web"), [true, false, false]),
            (sel("workload", "StatefulSet/web"), [false, false, false]),
            (sel("pod", "db-0"), [false, true, false]),
            (sel("pod-regex", "^web-"), [true, false, false]),
            (sel("pod-regex", ".*"), [true, true, false]),
            (sel("label", "app=web,tier=front"), [true, false, false]),
            (sel("label", "app=web,tier=back"), [false, false, false]),
            (sel("label", "app"), [true, true, false]),
        ];
        for (s, want) in cases {
            let got = [s.matches(&web), s.matches(&db), s.matches(&node)];
            assert_eq!(got, want, "{s:?}");
        }
    }

    #[test]
    fn bad_selectors_are_errors_that_say_what_to_use() {
        assert!(
            PodSelector::parse("pod-regex", "(").unwrap_err().contains("not a regular expression")
        );
        assert!(PodSelector::parse("team", "x").unwrap_err().contains("use namespace"));
    }
}
