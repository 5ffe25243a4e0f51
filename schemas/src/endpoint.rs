//! The enrichment columns that every table carries for both ends, `src_*` and `dst_*`: who held
//! an IP address at the moment of the record. Capture leaves them empty (`''`, never null);
//! ingest fills them from pod metadata.
use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field};
use std::sync::Arc;

/// One end's enrichment columns, without the `src_`/`dst_` prefix, in schema order.
pub const SUFFIXES: [&str; 7] =
    ["name", "namespace", "pod", "workload", "workload_kind", "service", "node"];

/// [`SUFFIXES`] by name.
pub const NAME: &str = SUFFIXES[0];
/// See [`NAME`].
pub const NAMESPACE: &str = SUFFIXES[1];
/// See [`NAME`].
pub const POD: &str = SUFFIXES[2];
/// See [`NAME`].
pub const WORKLOAD: &str = SUFFIXES[3];
/// See [`NAME`].
pub const WORKLOAD_KIND: &str = SUFFIXES[4];
/// See [`NAME`].
pub const SERVICE: &str = SUFFIXES[5];
/// See [`NAME`].
pub const NODE: &str = SUFFIXES[6];

/// The two ends of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The initiator (`src_*` columns).
    Src,
    /// The responder (`dst_*` columns).
    Dst,
}

impl Side {
    /// The column prefix, `src_` or `dst_`.
    pub fn prefix(self) -> &'static str {
        match self {
            Side::Src => "src_",
            Side::Dst => "dst_",
        }
    }

    /// The full column name of an enrichment suffix, e.g. `dst_namespace`.
    pub fn column(self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix())
    }
}

/// Pod metadata of one end. Empty strings mean unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointMeta {
    /// Pod name, else service name, else the DNS name the client resolved, else `''`.
    pub name: String,
    /// Kubernetes namespace; `''` outside the cluster.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Owning workload (Deployment, StatefulSet, DaemonSet, CronJob, Job, ...).
    pub workload: String,
    /// Kind of the owning workload.
    pub workload_kind: String,
    /// Service: the one whose ClusterIP this is, or the first (by name) selecting the pod.
    pub service: String,
    /// Node the pod runs on, or the node that owns this IP.
    pub node: String,
}

impl EndpointMeta {
    /// The values in [`SUFFIXES`] order.
    pub fn values(&self) -> [&str; 7] {
        [
            &self.name,
            &self.namespace,
            &self.pod,
            &self.workload,
            &self.workload_kind,
            &self.service,
            &self.node,
        ]
    }
}

/// The Arrow fields of one side's enrichment columns.
pub fn fields(side: Side) -> Vec<Field> {
    SUFFIXES.iter().map(|s| Field::new(side.column(s), DataType::Utf8, false)).collect()
}

/// Builds one side's enrichment columns.
#[derive(Debug, Default)]
pub struct EndpointBuilder {
    cols: [StringBuilder; 7],
}

impl EndpointBuilder {
    /// A builder sized for `rows` rows (names of about 16 bytes).
    pub fn with_capacity(rows: usize) -> Self {
        EndpointBuilder {
            cols: std::array::from_fn(|_| StringBuilder::with_capacity(rows, rows * 16)),
        }
    }

    /// Appends one row.
    pub fn append(&mut self, meta: &EndpointMeta) {
        for (b, v) in self.cols.iter_mut().zip(meta.values()) {
            b.append_value(v);
        }
    }

    /// Finishes the columns, in [`SUFFIXES`] order.
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        self.cols.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect()
    }
}
