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

use crate::decode::{RawFields, Reason, Rejection, intern, parse_rfc3339};

const ID_COLUMNS: [&str; 7] = ["door", "reader", "camera", "sensor", "device", "card", "direction"];

/// The schema of vigil's Arrow replay files.
pub fn schema() -> Schema {
    let dict = || DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut fields = vec![Field::new("ts", DataType::Int64, false), Field::new("type", dict(), false)];
    fields.extend(ID_COLUMNS.iter().map(|c| Field::new(*c, dict(), true)));
    fields.push(Field::new("count", DataType::UInt16, true));
    Schema::new(fields)
}

/// A dictionary column resolved for one batch: per row, the value (or none).
struct DictColumn<'a> {
    keys: Option<&'a arrow_array::Int32Array>,
    values: Option<&'a StringArray>,
}

impl<'a> DictColumn<'a> {
    fn of(batch: &'a RecordBatch, name: &str) -> Result<DictColumn<'a>, String> {
        let Some(col) = batch.column_by_name(name) else {
            return Ok(DictColumn { keys: None, values: None });
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
        Ok(DictColumn { keys: Some(dict.keys()), values: Some(values) })
    }

    #[inline]
    fn get(&self, row: usize) -> Option<&'a str> {
        let (keys, values) = (self.keys?, self.values?);
        if keys.is_null(row) {
            return None;
        }
        let k = keys.value(row) as usize;
        (k < values.len() && !values.is_null(k)).then(|| values.value(k))
    }
}

/// Decodes one record batch into `out`; calls `card` with each card key and id string (the host
/// decides whether it is new). Returns the rejected rows; `first_row` numbers the first (1-based).
pub fn decode_batch(
    topo: &Topology,
    batch: &RecordBatch,
    first_row: u64,
    ingest_ns: u64,
    out: &mut Vec<Event>,
    card: &mut dyn FnMut(CardKey, &str),
) -> Vec<Rejection> {
    let mut rejected = Vec::new();
    let whole = |detail: String| {
        (0..batch.num_rows())
            .map(|i| Rejection { line: first_row + i as u64, reason: Reason::InvalidField, detail: detail.clone() })
            .collect::<Vec<_>>()
    };
    let Some(ts) = batch.column_by_name("ts").and_then(|c| c.as_any().downcast_ref::<Int64Array>()) else {
        return whole("batch has no Int64 `ts` column".into());
    };
    let columns: Result<Vec<DictColumn<'_>>, String> =
        std::iter::once("type").chain(ID_COLUMNS).map(|c| DictColumn::of(batch, c)).collect();
    let columns = match columns {
        Ok(c) => c,
        Err(e) => return whole(e),
    };
    let count = batch.column_by_name("count").and_then(|c| c.as_any().downcast_ref::<UInt16Array>());
    // Resolve the type dictionary once.
    let types: Vec<Option<EventType>> = match columns[0].values {
        Some(v) => (0..v.len()).map(|i| (!v.is_null(i)).then(|| EventType::from_name(v.value(i))).flatten()).collect(),
        None => Vec::new(),
    };
    for row in 0..batch.num_rows() {
        let line = first_row + row as u64;
        let reject = |reason, detail: String| Rejection { line, reason, detail };
        if ts.is_null(row) || ts.value(row) < 0 {
            rejected.push(reject(Reason::InvalidField, "`ts` is null or negative".into()));
            continue;
        }
        let kind = match columns[0].keys {
            Some(k) if !k.is_null(row) => types.get(k.value(row) as usize).copied().flatten(),
            _ => None,
        };
        let Some(kind) = kind else {
            rejected.push(reject(Reason::UnknownType, format!("unknown type {:?}", columns[0].get(row))));
            continue;
        };
        let out_dir = match columns[7].get(row) {
            None => None,
            Some("in") => Some(false),
            Some("out") => Some(true),
            Some(other) => {
                rejected
                    .push(reject(Reason::InvalidField, format!("`direction` \"{other}\" is not \"in\" or \"out\"")));
                continue;
            }
        };
        let fields = RawFields {
            ts: ts.value(row) as u64,
            kind: Some(kind),
            door: columns[1].get(row),
            reader: columns[2].get(row),
            camera: columns[3].get(row),
            sensor: columns[4].get(row),
            device: columns[5].get(row),
            card: columns[6].get(row),
            out: out_dir,
            count: count.and_then(|c| (!c.is_null(row)).then(|| c.value(row))),
        };
        match intern(topo, &fields, ingest_ns) {
            Ok(ev) => {
                if let (true, Some(c)) = (ev.card.is_some(), fields.card) {
                    card(ev.card, c);
                }
                out.push(ev);
            }
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
