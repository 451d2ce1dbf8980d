//! Arrow IPC replay files (DESIGN §2.3): the fast replay format.
//!
//! Columns: `ts` Int64; `type`, `door`, `reader`, `camera`, `sensor`, `device`, `card`,
//! `direction` dictionary-encoded Utf8 (Int32 keys); `count` UInt16; all but `ts` and `type`
//! nullable. Decoding is batch-wise: each dictionary is resolved once per batch, rows then only
//! index it. [`ndjson_to_arrow`] writes such a file from NDJSON so both paths can be exercised on
//! the same data.

use std::io::{BufRead, Write};
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringDictionaryBuilder, UInt16Builder};
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, DictionaryArray, Int64Array, RecordBatch, StringArray, UInt16Array};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use vigil_rules::{CardKey, Event, EventType, Topology};

use crate::decode::{DeviceRef, Fields, Reason, Rejection, intern, parse_rfc3339};

const ID_COLUMNS: [&str; 7] = ["door", "reader", "camera", "sensor", "device", "card", "direction"];

/// The schema of vigil's Arrow replay files.
pub fn schema() -> Schema {
    let dict = || DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut fields = vec![Field::new("ts", DataType::Int64, false), Field::new("type", dict(), false)];
    fields.extend(ID_COLUMNS.iter().map(|c| Field::new(*c, dict(), true)));
    fields.push(Field::new("count", DataType::UInt16, true));
    Schema::new(fields)
}

/// A dictionary column of one batch, with every dictionary value resolved once.
struct DictColumn<'a, V> {
    keys: Option<&'a arrow_array::Int32Array>,
    resolved: Vec<Option<V>>,
}

impl<'a, V: Copy> DictColumn<'a, V> {
    fn of(batch: &'a RecordBatch, name: &str, resolve: impl Fn(&'a str) -> V) -> Result<DictColumn<'a, V>, String> {
        let Some(col) = batch.column_by_name(name) else {
            return Ok(DictColumn { keys: None, resolved: Vec::new() });
        };
        let dict = col
            .as_any()
            .downcast_ref::<DictionaryArray<Int32Type>>()
            .ok_or_else(|| format!("column `{name}` is {}, expected Dictionary(Int32, Utf8)", col.data_type()))?;
        let values = dict
            .values()
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| format!("column `{name}` dictionary values are not Utf8"))?;
        let resolved = (0..values.len()).map(|i| (!values.is_null(i)).then(|| resolve(values.value(i)))).collect();
        Ok(DictColumn { keys: Some(dict.keys()), resolved })
    }

    #[inline]
    fn get(&self, row: usize) -> Option<V> {
        let keys = self.keys?;
        if keys.is_null(row) {
            return None;
        }
        self.resolved.get(keys.value(row) as usize).copied().flatten()
    }
}

/// Decodes one record batch into `out`; calls `card` with each distinct card key and id string of
/// the batch (the host decides whether it is new). Returns the rejected rows; `first_row` numbers
/// the first (1-based).
pub fn decode_batch(
    topo: &Topology,
    batch: &RecordBatch,
    first_row: u64,
    ingest_ns: u64,
    out: &mut Vec<Event>,
    card: &mut dyn FnMut(CardKey, &str),
) -> Vec<Rejection> {
    let whole = |detail: String| {
        (0..batch.num_rows())
            .map(|i| Rejection { line: first_row + i as u64, reason: Reason::InvalidField, detail: detail.clone() })
            .collect::<Vec<_>>()
    };
    let Some(ts) = batch.column_by_name("ts").and_then(|c| c.as_any().downcast_ref::<Int64Array>()) else {
        return whole("batch has no Int64 `ts` column".into());
    };
    let columns = (|| -> Result<_, String> {
        let types = DictColumn::of(batch, "type", |s| EventType::from_name(s).ok_or(s))?;
        let devices: Vec<DictColumn<'_, DeviceRef<'_>>> = ID_COLUMNS[..5]
            .iter()
            .map(|c| DictColumn::of(batch, c, |s| DeviceRef::resolve(topo, s)))
            .collect::<Result<_, _>>()?;
        let cards = DictColumn::of(batch, "card", |s| (CardKey::of(s), s))?;
        let direction = DictColumn::of(batch, "direction", |s| match s {
            "in" => Ok(false),
            "out" => Ok(true),
            other => Err(other),
        })?;
        Ok((types, devices, cards, direction))
    })();
    let (types, devices, cards, direction) = match columns {
        Ok(c) => c,
        Err(e) => return whole(e),
    };
    for &(key, name) in cards.resolved.iter().flatten() {
        card(key, name);
    }
    let count = batch.column_by_name("count").and_then(|c| c.as_any().downcast_ref::<UInt16Array>());
    // Device columns whose dictionary names an unknown id: only these need a per-row check
    // beyond the columns a row's type uses.
    let unknown_elsewhere: Vec<usize> = (0..devices.len())
        .filter(|&c| devices[c].resolved.iter().flatten().any(|r| matches!(r, DeviceRef::Unknown(_))))
        .collect();
    let mut rejected = Vec::new();
    out.reserve(batch.num_rows());
    for row in 0..batch.num_rows() {
        let line = first_row + row as u64;
        let reject = |reason, detail: String| Rejection { line, reason, detail };
        if ts.is_null(row) || ts.value(row) < 0 {
            rejected.push(reject(Reason::InvalidField, "`ts` is null or negative".into()));
            continue;
        }
        let kind = match types.get(row) {
            Some(Ok(k)) => k,
            Some(Err(name)) => {
                rejected.push(reject(Reason::UnknownType, format!("unknown type \"{name}\"")));
                continue;
            }
            None => {
                rejected.push(reject(Reason::MissingField, "missing field `type`".into()));
                continue;
            }
        };
        let out_dir = match if kind.is_access() || kind == EventType::LineCrossed { direction.get(row) } else { None } {
            None => None,
            Some(Ok(o)) => Some(o),
            Some(Err(other)) => {
                rejected
                    .push(reject(Reason::InvalidField, format!("`direction` \"{other}\" is not \"in\" or \"out\"")));
                continue;
            }
        };
        // Fetch only the columns this type uses; the others matter only if their dictionary
        // holds an id the topology lacks (then the row is rejected like its NDJSON twin).
        use EventType as T;
        let (door, reader, camera, sensor, device) = match kind {
            T::AccessGranted | T::AccessDenied | T::Duress => {
                (devices[0].get(row), devices[1].get(row), None, None, None)
            }
            T::Rex | T::DoorForced | T::DoorOpened | T::DoorHeld | T::DoorClosed => {
                (devices[0].get(row), None, None, None, None)
            }
            T::Motion | T::LineCrossed | T::CameraTamper => (None, None, devices[2].get(row), None, None),
            T::Intrusion | T::GlassBreak => (None, None, None, devices[3].get(row), None),
            T::Heartbeat => (None, None, None, None, devices[4].get(row)),
        };
        if let Some(id) = unknown_elsewhere.iter().find_map(|&c| match devices[c].get(row) {
            Some(DeviceRef::Unknown(id)) => Some(id),
            _ => None,
        }) {
            let detail = format!("{} \"{id}\" is not in the topology", ID_COLUMNS[unknown_elsewhere[0]]);
            rejected.push(reject(Reason::UnknownDevice, detail));
            continue;
        }
        let fields = Fields {
            ts: ts.value(row) as u64,
            kind,
            door,
            reader,
            camera,
            sensor,
            device,
            card: if kind.is_access() { cards.get(row).map_or(CardKey::NONE, |(k, _)| k) } else { CardKey::NONE },
            out: out_dir,
            count: if kind == T::LineCrossed {
                count.and_then(|c| (!c.is_null(row)).then(|| c.value(row)))
            } else {
                None
            },
        };
        match intern(topo, &fields, ingest_ns) {
            Ok(ev) => out.push(ev),
            Err((reason, detail)) => rejected.push(reject(reason, detail)),
        }
    }
    rejected
}

/// Builds record batches of vigil's schema, row by row.
pub struct ArrowBatcher {
    schema: Arc<Schema>,
    ts: Int64Builder,
    dicts: Vec<StringDictionaryBuilder<Int32Type>>,
    count: UInt16Builder,
    rows: usize,
}

impl std::fmt::Debug for ArrowBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrowBatcher").field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl Default for ArrowBatcher {
    fn default() -> Self {
        ArrowBatcher::new()
    }
}

impl ArrowBatcher {
    /// An empty batcher.
    pub fn new() -> ArrowBatcher {
        ArrowBatcher {
            schema: Arc::new(schema()),
            ts: Int64Builder::new(),
            dicts: (0..=ID_COLUMNS.len()).map(|_| StringDictionaryBuilder::new()).collect(),
            count: UInt16Builder::new(),
            rows: 0,
        }
    }

    /// The schema of the batches.
    pub fn schema(&self) -> Arc<Schema> {
        self.schema.clone()
    }

    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one event given by its string fields (`values` in the order of the schema's id
    /// columns: door, reader, camera, sensor, device, card, direction).
    pub fn push(&mut self, ts: i64, kind: &str, values: [Option<&str>; 7], count: Option<u16>) {
        self.ts.append_value(ts);
        self.dicts[0].append_value(kind);
        for (i, v) in values.iter().enumerate() {
            self.dicts[i + 1].append_option(*v);
        }
        self.count.append_option(count);
        self.rows += 1;
    }

    /// Takes the buffered rows as a record batch.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![Arc::new(self.ts.finish())];
        // Dictionaries keep their values across batches: an IPC file allows one dictionary per
        // field, extended by deltas, never replaced.
        for d in &mut self.dicts {
            cols.push(Arc::new(d.finish_preserve_values()));
        }
        cols.push(Arc::new(self.count.finish()));
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), cols)
    }
}

/// Result of [`ndjson_to_arrow`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    /// Rows written.
    pub rows: u64,
    /// Lines skipped (not JSON objects, or without `ts`/`type`), with line numbers.
    pub skipped: Vec<u64>,
}

/// Converts NDJSON to an Arrow IPC file, field by field (no topology needed: validation happens
/// when the file is replayed). Lines that are not objects with `ts` and `type` are skipped.
pub fn ndjson_to_arrow(
    input: impl BufRead,
    output: impl Write,
    rows_per_batch: usize,
) -> Result<Converted, ArrowError> {
    use simd_json::prelude::*;
    let mut batcher = ArrowBatcher::new();
    let options = arrow_ipc::writer::IpcWriteOptions::default()
        .with_dictionary_handling(arrow_ipc::writer::DictionaryHandling::Delta);
    let mut writer = arrow_ipc::writer::FileWriter::try_new_with_options(
        std::io::BufWriter::new(output),
        &batcher.schema(),
        options,
    )?;
    let mut result = Converted::default();
    for (i, line) in input.lines().enumerate() {
        let line_no = i as u64 + 1;
        let mut bytes = line.map_err(|e| ArrowError::IoError(e.to_string(), e))?.into_bytes();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(value) = simd_json::to_borrowed_value(&mut bytes) else {
            result.skipped.push(line_no);
            continue;
        };
        let ts = match value.get("ts") {
            Some(v) if v.as_i64().is_some() => v.as_i64(),
            Some(v) => v.as_str().and_then(parse_rfc3339).map(|t| t as i64),
            None => None,
        };
        let (Some(ts), Some(kind)) = (ts, value.get_str("type")) else {
            result.skipped.push(line_no);
            continue;
        };
        let values = ID_COLUMNS.map(|c| value.get_str(c));
        let count = value.get_u64("count").and_then(|c| u16::try_from(c).ok());
        batcher.push(ts, kind, values, count);
        result.rows += 1;
        if batcher.len() >= rows_per_batch {
            writer.write(&batcher.finish()?)?;
        }
    }
    if !batcher.is_empty() {
        writer.write(&batcher.finish()?)?;
    }
    writer.finish()?;
    Ok(result)
}

/// Reads every record batch of an Arrow IPC file.
pub fn read_ipc_file(
    path: &std::path::Path,
) -> Result<arrow_ipc::reader::FileReader<std::io::BufReader<std::fs::File>>, ArrowError> {
    let file = std::fs::File::open(path).map_err(|e| ArrowError::IoError(format!("{}: {e}", path.display()), e))?;
    arrow_ipc::reader::FileReader::try_new_buffered(file, None)
}
