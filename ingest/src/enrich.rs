//! Enrichment: fills a batch's `src_*`/`dst_*` columns from an [`Inventory`], as of each row's
//! event time. `name` is the pod name, else the service name, else (for `dst` of a connection)
//! the DNS name the client resolved, else `''`.
use crate::error::{Error, Result};
use crate::inventory::{Inventory, SharedInventory};
use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use podwire_schemas::endpoint::{EndpointBuilder, SUFFIXES, Side};
use podwire_schemas::{EndpointMeta, Table, connections};
use std::net::IpAddr;
use std::sync::Arc;

/// Enriches batches of any table.
#[derive(Debug, Clone)]
pub struct Enricher {
    inventory: SharedInventory,
}

fn string_col<'a>(batch: &'a RecordBatch, table: Table, name: &str) -> Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| Error::MissingColumn { table: table.name(), column: name.to_string() })
}

impl Enricher {
    /// An enricher over a fixed `inventory`.
    pub fn new(inventory: Inventory) -> Self {
        Enricher { inventory: SharedInventory::new(inventory) }
    }

    /// An enricher over an inventory that changes (the live Kubernetes watch).
    pub fn shared(inventory: SharedInventory) -> Self {
        Enricher { inventory }
    }

    /// Returns `batch` with its enrichment columns filled.
    ///
    /// # Errors
    /// [`Error::MissingColumn`] for a batch that is not of `table`'s schema.
    pub fn enrich(&self, table: Table, batch: &RecordBatch) -> Result<RecordBatch> {
        if table == Table::CaptureStats {
            return Ok(batch.clone()); // no endpoints to name
        }
        let schema = batch.schema();
        let ts = crate::event_times(table, batch)?;
        let src_ip = string_col(batch, table, &Side::Src.column("ip"))?;
        let dst_ip = string_col(batch, table, &Side::Dst.column("ip"))?;
        let dns_name = match table {
            Table::Connections => Some(string_col(batch, table, connections::col::DST_DNS_NAME)?),
            _ => None,
        };
        let inventory = self.inventory.get();
        let mut src = EndpointBuilder::default();
        let mut dst = EndpointBuilder::default();
        let empty = EndpointMeta::default();
        // Without an inventory no address can be found: skip parsing them.
        let any = !inventory.is_empty();
        for row in 0..batch.num_rows() {
            let t_ns = ts.value(row).saturating_mul(1_000);
            let look = |ips: &StringArray| -> Option<&EndpointMeta> {
                if !any {
                    return None;
                }
                let ip: IpAddr = ips.value(row).parse().ok()?;
                inventory.lookup(ip, t_ns)
            };
            src.append(look(src_ip).unwrap_or(&empty));
            match (look(dst_ip), dns_name) {
                (Some(m), _) if !m.name.is_empty() => dst.append(m),
                (found, Some(names)) if !names.value(row).is_empty() => {
                    let mut m = found.cloned().unwrap_or_default();
                    m.name = names.value(row).to_string();
                    dst.append(&m);
                }
                (found, _) => dst.append(found.unwrap_or(&empty)),
            }
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for (side, builder) in [(Side::Src, &mut src), (Side::Dst, &mut dst)] {
            for (suffix, array) in SUFFIXES.iter().zip(builder.finish()) {
                let name = side.column(suffix);
                let idx = schema.index_of(&name).map_err(|_| Error::MissingColumn {
                    table: table.name(),
                    column: name.clone(),
                })?;
                columns[idx] = array;
            }
        }
        Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
    }
}
