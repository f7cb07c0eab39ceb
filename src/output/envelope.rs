//! `-o json` and `-o yaml`: upstream's envelope,
//! `{"metadata":{"count":N,"truncated":B},"data":[…records…]}`, printed
//! once the query ends.
//!
//! JSON keeps each record's bytes (key order, exact numbers; a CEF record
//! is its JSON view) and indents them as Go's encoder does
//! ([`super::goindent`]). YAML goes through a JSON value, so its keys are
//! sorted as upstream's `sigs.k8s.io/yaml` sorts them. `--jq` runs on the
//! whole envelope; its result is printed the same way (with `-r`, as raw
//! lines). A filter error here ends the command: it is one document.

use std::io::{self, Write};

use super::{Output, Summary, goindent};
use crate::jq::JqFilter;
use crate::record::Record;

pub struct Envelope<W: Write> {
    out: W,
    yaml: bool,
    jq: Option<JqFilter>,
    raw: bool,
    /// The records' JSON, comma-separated, as the inside of `"data":[…]`.
    data: Vec<u8>,
    count: usize,
}

impl<W: Write> Envelope<W> {
    pub fn new(out: W, yaml: bool, jq: Option<JqFilter>, raw: bool) -> Self {
        Envelope {
            out,
            yaml,
            jq,
            raw,
            data: Vec::new(),
            count: 0,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    /// The compact envelope.
    fn document(&self, summary: &Summary) -> Vec<u8> {
        let mut doc = Vec::with_capacity(self.data.len() + 64);
        write!(
            doc,
            r#"{{"metadata":{{"count":{},"truncated":{}}},"data":["#,
            summary.count, summary.truncated
        )
        .expect("writing to a Vec cannot fail");
        doc.extend_from_slice(&self.data);
        doc.extend_from_slice(b"]}");
        doc
    }
}

impl<W: Write> Output for Envelope<W> {
    fn record(&mut self, record: &Record) -> io::Result<()> {
        if self.count > 0 {
            self.data.push(b',');
        }
        self.data.extend_from_slice(record.json());
        self.count += 1;
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        let mut doc = self.document(summary);
        self.data = Vec::new();
        if let Some(filter) = &self.jq {
            let mut result = Vec::new();
            let applied = if self.raw {
                filter.apply_raw(&doc, &mut result).map(|n| n > 0)
            } else {
                filter.apply(&doc, &mut result).map(|()| true)
            };
            let any = applied.map_err(|skip| io::Error::new(io::ErrorKind::InvalidData, skip))?;
            if self.raw {
                if any {
                    result.push(b'\n');
                }
                self.out.write_all(&result)?;
                return self.out.flush();
            }
            doc = result;
        }
        if self.yaml {
            let value: serde_json::Value = serde_json::from_slice(&doc)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let text = serde_yaml_ng::to_string(&value)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.out.write_all(text.as_bytes())?;
        } else {
            self.out.write_all(&goindent::indent(&doc))?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(yaml: bool, jq: Option<&str>, raw: bool, lines: &[&str], summary: Summary) -> String {
        let mut e = Envelope::new(
            Vec::new(),
            yaml,
            jq.map(|j| JqFilter::compile(j).unwrap()),
            raw,
        );
        for l in lines {
            e.record(&Record::from_slice(l.as_bytes()).unwrap())
                .unwrap();
        }
        e.finish(&summary).unwrap();
        String::from_utf8(e.into_inner()).unwrap()
    }

    const A: &str = r#"{"type":"authorization","ts":"2026-08-23T14:00:00Z","trace_id":"t<1>","future_field":9007199254740993,"granted":false}"#;

    #[test]
    fn json_keeps_record_bytes_and_indents_as_go() {
        let out = print(
            false,
            None,
            false,
            &[A],
            Summary {
                count: 1,
                truncated: true,
            },
        );
        assert_eq!(
            out,
            "{\n  \"metadata\": {\n    \"count\": 1,\n    \"truncated\": true\n  },\n  \"data\": [\n    {\n      \"type\": \"authorization\",\n      \"ts\": \"2026-08-23T14:00:00Z\",\n      \"trace_id\": \"t\\u003c1\\u003e\",\n      \"future_field\": 9007199254740993,\n      \"granted\": false\n    }\n  ]\n}\n"
        );
    }

    #[test]
    fn empty_result_is_an_empty_data_array() {
        let out = print(false, None, false, &[], Summary::default());
        assert_eq!(
            out,
            "{\n  \"metadata\": {\n    \"count\": 0,\n    \"truncated\": false\n  },\n  \"data\": []\n}\n"
        );
    }

    #[test]
    fn yaml_sorts_keys() {
        let out = print(
            true,
            None,
            false,
            &[A],
            Summary {
                count: 1,
                truncated: false,
            },
        );
        assert!(
            out.starts_with("data:\n- future_field: 9007199254740993\n"),
            "{out}"
        );
        assert!(
            out.contains("metadata:\n  count: 1\n  truncated: false\n"),
            "{out}"
        );
    }

    #[test]
    fn jq_runs_on_the_envelope() {
        let s = Summary {
            count: 1,
            truncated: false,
        };
        assert_eq!(
            print(false, Some(".data[0].future_field"), false, &[A], s),
            "9007199254740993\n"
        );
        assert_eq!(
            print(false, Some(".metadata"), false, &[A], s),
            "{\n  \"count\": 1,\n  \"truncated\": false\n}\n"
        );
        assert_eq!(
            print(false, Some(".data[].type"), true, &[A, A], s),
            "authorization\nauthorization\n"
        );
        assert_eq!(
            print(true, Some(".data[0].granted"), false, &[A], s),
            "false\n"
        );
    }

    #[test]
    fn a_jq_error_on_the_envelope_is_an_error() {
        let mut e = Envelope::new(
            Vec::new(),
            false,
            Some(JqFilter::compile(".data | ascii_downcase").unwrap()),
            false,
        );
        e.record(&Record::from_slice(A.as_bytes()).unwrap())
            .unwrap();
        let err = e.finish(&Summary::default()).unwrap_err();
        assert!(err.to_string().starts_with("jq filter failed:"), "{err}");
    }
}
