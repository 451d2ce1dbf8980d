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
pub use arrow_schema::ArrowError;
use arrow_schema::{DataType, Field, Schema};
use vigil_rules::{CardKey, DeviceIx, Event, EventType, Topology};

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

/// Resolutions of one dictionary column, kept across batches. IPC files extend a field's
/// dictionary with deltas, so each batch's dictionary usually starts with the previous one: when
/// its offsets and bytes match the previous dictionary's exactly (a memcmp), the earlier
/// resolutions are reused and only the new suffix is resolved. Anything else resolves afresh.
#[derive(Debug)]
struct DictCache<V> {
    values: Option<StringArray>,
    resolved: Vec<Option<V>>,
}

impl<V: Copy> Default for DictCache<V> {
    fn default() -> Self {
        DictCache { values: None, resolved: Vec::new() }
    }
}

impl<V: Copy> DictCache<V> {
    /// Resolves `values`, calling `fresh` for each value not already resolved.
    fn update(&mut self, values: &StringArray, mut resolve: impl FnMut(&str) -> V) {
        let reuse = match &self.values {
            Some(old) if values.len() >= old.len() => {
                let n = old.len();
                values.value_offsets()[..=n] == old.value_offsets()[..=n]
                    && values.value_data().get(..old.value_data().len()) == Some(old.value_data())
            }
            _ => false,
        };
        if !reuse {
            self.resolved.clear();
        }
        for i in self.resolved.len()..values.len() {
            self.resolved.push((!values.is_null(i)).then(|| resolve(values.value(i))));
        }
        self.values = Some(values.clone());
    }
}

/// A dictionary column of one batch: its keys, resolved through the cache.
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

    /// The dictionary index of `row`, if the column is present and the row not null.
    #[inline]
    fn index(&self, row: usize) -> Option<usize> {
        let keys = self.keys?;
        (!keys.is_null(row)).then(|| keys.value(row) as usize)
    }

    #[inline]
    fn get<V: Copy>(&self, row: usize, cache: &DictCache<V>) -> Option<V> {
        cache.resolved.get(self.index(row)?).copied().flatten()
    }

    #[inline]
    fn str(&self, row: usize) -> &'a str {
        match (self.index(row), self.values) {
            (Some(i), Some(v)) if i < v.len() => v.value(i),
            _ => "",
        }
    }
}

/// Decodes Arrow record batches for one topology, caching dictionary resolutions across
/// batches. One per worker.
#[derive(Debug, Default)]
pub struct ArrowDecoder {
    types: DictCache<Option<EventType>>,
    devices: [DictCache<Option<DeviceIx>>; 5],
    cards: DictCache<CardKey>,
    direction: DictCache<Option<bool>>,
}

impl ArrowDecoder {
    /// A decoder with empty caches.
    pub fn new() -> ArrowDecoder {
        ArrowDecoder::default()
    }

    /// Decodes one record batch into `out`; calls `card` with the key and id string of each card
    /// value not seen in an earlier batch's dictionary. Returns the rejected rows; `first_row`
    /// numbers the first (1-based).
    pub fn decode(
        &mut self,
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
        let columns: Result<Vec<DictColumn<'_>>, String> =
            std::iter::once("type").chain(ID_COLUMNS).map(|c| DictColumn::of(batch, c)).collect();
        let columns = match columns {
            Ok(c) => c,
            Err(e) => return whole(e),
        };
        let (type_col, device_cols, card_col, dir_col) = (&columns[0], &columns[1..6], &columns[6], &columns[7]);
        if let Some(v) = type_col.values {
            self.types.update(v, EventType::from_name);
        }
        for (c, cache) in device_cols.iter().zip(self.devices.iter_mut()) {
            if let Some(v) = c.values {
                cache.update(v, |s| topo.device(s));
            }
        }
        if let Some(v) = card_col.values {
            self.cards.update(v, |s| {
                let key = CardKey::of(s);
                card(key, s);
                key
            });
        }
        if let Some(v) = dir_col.values {
            self.direction.update(v, |s| match s {
                "in" => Some(false),
                "out" => Some(true),
                _ => None,
            });
        }
        // Device columns whose dictionary names an id the topology lacks: only these need a
        // per-row check beyond the columns a row's type uses (then the row is rejected like its
        // NDJSON twin).
        let unknown_elsewhere: Vec<usize> =
            (0..5).filter(|&c| self.devices[c].resolved.iter().any(|r| matches!(r, Some(None)))).collect();
        let count = batch.column_by_name("count").and_then(|c| c.as_any().downcast_ref::<UInt16Array>());
        let mut rejected = Vec::new();
        out.reserve(batch.num_rows());
        let device = |c: usize, row: usize, cache: &DictCache<Option<DeviceIx>>| -> Option<DeviceRef<'_>> {
            device_cols[c]
                .get(row, cache)
                .map(|r| r.map_or(DeviceRef::Unknown(device_cols[c].str(row)), DeviceRef::Known))
        };
        for row in 0..batch.num_rows() {
            let line = first_row + row as u64;
            let reject = |reason, detail: String| Rejection { line, reason, detail };
            if ts.is_null(row) || ts.value(row) < 0 {
                rejected.push(reject(Reason::InvalidField, "`ts` is null or negative".into()));
                continue;
            }
            let kind = match type_col.get(row, &self.types) {
                Some(Some(k)) => k,
                Some(None) => {
                    rejected.push(reject(Reason::UnknownType, format!("unknown type \"{}\"", type_col.str(row))));
                    continue;
                }
                None => {
                    rejected.push(reject(Reason::MissingField, "missing field `type`".into()));
                    continue;
                }
            };
            let out_dir = match dir_col.get(row, &self.direction) {
                None => None,
                Some(Some(o)) => Some(o),
                Some(None) => {
                    let detail = format!("`direction` \"{}\" is not \"in\" or \"out\"", dir_col.str(row));
                    rejected.push(reject(Reason::InvalidField, detail));
                    continue;
                }
            };
            // Fetch only the columns this type uses.
            use EventType as T;
            let d = &self.devices;
            let (door, reader, camera, sensor, dev) = match kind {
                T::AccessGranted | T::AccessDenied | T::Duress => {
                    (device(0, row, &d[0]), device(1, row, &d[1]), None, None, None)
                }
                T::Rex | T::DoorForced | T::DoorOpened | T::DoorHeld | T::DoorClosed => {
                    (device(0, row, &d[0]), None, None, None, None)
                }
                T::Motion | T::LineCrossed | T::CameraTamper => (None, None, device(2, row, &d[2]), None, None),
                T::Intrusion | T::GlassBreak => (None, None, None, device(3, row, &d[3]), None),
                T::Heartbeat => (None, None, None, None, device(4, row, &d[4])),
            };
            if let Some((c, id)) = unknown_elsewhere.iter().find_map(|&c| match device(c, row, &d[c]) {
                Some(DeviceRef::Unknown(id)) => Some((c, id)),
                _ => None,
            }) {
                rejected
                    .push(reject(Reason::UnknownDevice, format!("{} \"{id}\" is not in the topology", ID_COLUMNS[c])));
                continue;
            }
            let fields = Fields {
                ts: ts.value(row) as u64,
                kind,
                door,
                reader,
                camera,
                sensor,
                device: dev,
                card: if kind.is_access() {
                    card_col.get(row, &self.cards).unwrap_or(CardKey::NONE)
                } else {
                    CardKey::NONE
                },
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
}

/// Decodes one record batch with a fresh [`ArrowDecoder`] (see [`ArrowDecoder::decode`]).
pub fn decode_batch(
    topo: &Topology,
    batch: &RecordBatch,
    first_row: u64,
    ingest_ns: u64,
    out: &mut Vec<Event>,
    card: &mut dyn FnMut(CardKey, &str),
) -> Vec<Rejection> {
    ArrowDecoder::new().decode(topo, batch, first_row, ingest_ns, out, card)
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

/// Writes vigil's Arrow IPC replay files row by row (delta dictionaries, batches of
/// `rows_per_batch` rows).
pub struct IpcFileWriter<W: Write> {
    batcher: ArrowBatcher,
    writer: arrow_ipc::writer::FileWriter<std::io::BufWriter<W>>,
    rows_per_batch: usize,
    rows: u64,
}

impl<W: Write> std::fmt::Debug for IpcFileWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcFileWriter").field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl<W: Write> IpcFileWriter<W> {
    /// A writer onto `output`.
    pub fn new(output: W, rows_per_batch: usize) -> Result<IpcFileWriter<W>, ArrowError> {
        let batcher = ArrowBatcher::new();
        let options = arrow_ipc::writer::IpcWriteOptions::default()
            .with_dictionary_handling(arrow_ipc::writer::DictionaryHandling::Delta);
        let writer = arrow_ipc::writer::FileWriter::try_new_with_options(
            std::io::BufWriter::new(output),
            &batcher.schema(),
            options,
        )?;
        Ok(IpcFileWriter { batcher, writer, rows_per_batch: rows_per_batch.max(1), rows: 0 })
    }

    /// Appends one event (see [`ArrowBatcher::push`]).
    pub fn push(
        &mut self,
        ts: i64,
        kind: &str,
        values: [Option<&str>; 7],
        count: Option<u16>,
    ) -> Result<(), ArrowError> {
        self.batcher.push(ts, kind, values, count);
        self.rows += 1;
        if self.batcher.len() >= self.rows_per_batch {
            self.writer.write(&self.batcher.finish()?)?;
        }
        Ok(())
    }

    /// Writes the last batch and the footer; returns the rows written.
    pub fn finish(mut self) -> Result<u64, ArrowError> {
        if !self.batcher.is_empty() {
            self.writer.write(&self.batcher.finish()?)?;
        }
        self.writer.finish()?;
        Ok(self.rows)
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
    let mut writer = IpcFileWriter::new(output, rows_per_batch)?;
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
        writer.push(ts, kind, values, count)?;
        result.rows += 1;
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
