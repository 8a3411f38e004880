//! `fieldguard audit subject ID FILES…`: everything the audit trail says
//! about one customer's data (CDM-4.2.3 every operation traceable,
//! CDM-1.2.2 the customer's right to know): who read, changed or deleted
//! it, when, through which route, with which outcome, and who was refused.
//!
//! The files — one process's, or a fleet's mixed in any order — are
//! verified chain by chain first ([`super::verify::verify_set`]); a broken
//! chain is an error, not a report (an open one is read as far as it
//! goes). Events from every chain are reported together, oldest first,
//! each naming its chain. Records are read with their
//! definitions merged in ([`super::read`]), so the report is the same
//! whether the log was written compacted or not. A record concerns the
//! customer when its request-level resource is the customer's id (every
//! `/customers/{id}…` route), or its `response_body.disclosed` names the
//! customer among the records shown (as a record id, or as the customer a
//! record is about). A listing that disclosed more records than its audit
//! record names (`omitted`) is reported as *possibly* concerning them.

use super::read::each_record;
use super::verify::{ChainStatus, VerifyOptions};
use fieldguard_core::redact::disclosed::Run;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;

/// What a request did to the customer's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Change,
    Delete,
}

impl Access {
    fn of(method: &str) -> Self {
        match method {
            "DELETE" => Access::Delete,
            "GET" | "HEAD" | "OPTIONS" => Access::Read,
            _ => Access::Change,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Change => "change",
            Access::Delete => "delete",
        }
    }
}

/// How a record was found to concern the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Matched {
    /// The request named the customer (its resource id).
    Resource,
    /// The response showed the customer's record, or a record about them.
    Disclosed,
    /// A listing disclosed more records than its audit record names.
    Possibly,
}

/// One request that concerned the customer.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The chain the record is in (its id; for formats 1 to 3, what
    /// [`super::verify::ChainReport::name`] says).
    pub chain: String,
    pub seq: u64,
    pub time: String,
    pub request_id: String,
    pub principal: Option<String>,
    pub roles: Vec<String>,
    pub method: String,
    pub route: Option<String>,
    pub access: Access,
    pub status: u64,
    /// `allowed`, or the proxy's refusal code (`forbidden`, …).
    pub outcome: String,
    pub matched: Matched,
    /// Records of the customer shown, as `Entity` names (reads).
    pub records: Vec<String>,
    /// Fields an allowed write carried (changes).
    pub written: Vec<String>,
}

/// The report: every event, oldest first, and what was verified.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub subject: String,
    /// Records verified, in every chain.
    pub records_verified: u64,
    /// The last hash of the chain, when the files hold one chain; empty
    /// otherwise (each chain's is in `chains`).
    pub last_hash: String,
    pub chains: Vec<ChainSummary>,
    pub events: Vec<Event>,
}

/// One chain read for the report.
#[derive(Debug, Clone, Serialize)]
pub struct ChainSummary {
    pub chain: String,
    pub status: ChainStatus,
    pub records: u64,
    pub last_seq: Option<u64>,
    pub last_hash: String,
}

/// Verifies `files` chain by chain, then finds every record concerning
/// `subject`, in every chain. `Err` names a broken chain or an unreadable
/// file.
pub fn subject_report(
    subject: &str,
    files: &[PathBuf],
    opts: &VerifyOptions,
) -> Result<Report, String> {
    let mut events = Vec::new();
    let fleet = each_record(files, opts, |chain, rec| {
        if let Some(mut event) = event(&rec, subject) {
            event.chain = chain.name();
            events.push(event);
        }
    })?;
    // Oldest first across chains (times are RFC 3339 UTC with
    // milliseconds: their text sorts as they do); a chain's own order
    // where they are equal.
    events.sort_by(|a, b| a.time.cmp(&b.time));
    let chains: Vec<ChainSummary> = fleet
        .chains
        .iter()
        .map(|c| ChainSummary {
            chain: c.name(),
            status: c.status,
            records: c.report.records,
            last_seq: c.report.last_seq,
            last_hash: c.report.last_hash.clone(),
        })
        .collect();
    Ok(Report {
        subject: subject.to_string(),
        records_verified: chains.iter().map(|c| c.records).sum(),
        last_hash: match chains.as_slice() {
            [one] => one.last_hash.clone(),
            _ => String::new(),
        },
        chains,
        events,
    })
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn lists(v: Option<&Value>, subject: &str) -> bool {
    v.and_then(Value::as_array).is_some_and(|runs| {
        runs.iter()
            .filter_map(Run::from_json)
            .any(|r| r.contains(subject))
    })
}

/// The event a record is for `subject`, if it concerns them.
fn event(rec: &Value, subject: &str) -> Option<Event> {
    let resource = rec
        .get("resource")
        .and_then(|r| str_of(r, "id"))
        .is_some_and(|id| id == subject);
    let disclosed = rec
        .get("response_body")
        .and_then(|b| b.get("disclosed"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut records = Vec::new();
    let mut possibly = false;
    for d in &disclosed {
        let entity = str_of(d, "entity").unwrap_or("?");
        let named = lists(d.get("ids"), subject)
            || d.get("subjects")
                .is_some_and(|s| lists(s.get("ids"), subject));
        if named {
            records.push(entity.to_string());
        } else {
            let omitted = |x: Option<&Value>| {
                x.and_then(|o| o.get("omitted"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    > 0
            };
            possibly |= omitted(Some(d)) || omitted(d.get("subjects"));
        }
    }
    let matched = if resource {
        Matched::Resource
    } else if !records.is_empty() {
        Matched::Disclosed
    } else if possibly {
        Matched::Possibly
    } else {
        return None;
    };
    let method = str_of(rec, "method").unwrap_or("").to_string();
    let principal = rec.get("principal");
    Some(Event {
        chain: String::new(),
        seq: rec.get("seq").and_then(Value::as_u64).unwrap_or(0),
        time: str_of(rec, "time").unwrap_or("").to_string(),
        request_id: str_of(rec, "request_id").unwrap_or("").to_string(),
        principal: principal.and_then(|p| str_of(p, "id")).map(str::to_string),
        roles: principal
            .and_then(|p| p.get("roles"))
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        access: Access::of(&method),
        method,
        route: str_of(rec, "route").map(str::to_string),
        status: rec.get("status").and_then(Value::as_u64).unwrap_or(0),
        outcome: str_of(rec, "refusal").unwrap_or("allowed").to_string(),
        matched,
        records,
        written: rec
            .get("written")
            .and_then(Value::as_array)
            .map(|w| {
                w.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

impl Report {
    /// One line per event and a summary, for people.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for e in &self.events {
            let who = match &e.principal {
                Some(p) => format!("{p} [{}]", e.roles.join(",")),
                None => "(unidentified)".to_string(),
            };
            let mut what = match e.matched {
                Matched::Resource => "named in the request".to_string(),
                Matched::Disclosed => format!("shown: {}", e.records.join(", ")),
                Matched::Possibly => "possibly shown (a listing beyond the named ids)".to_string(),
            };
            if !e.written.is_empty() {
                let _ = write!(what, "; wrote {}", e.written.join(", "));
            }
            let chain = if self.chains.len() > 1 {
                format!("chain {}  ", e.chain)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "{}  {chain}seq {:<6} {:<6} {:<40} {} {} -> {} {}  ({what}; request {})",
                e.time,
                e.seq,
                e.access.as_str(),
                who,
                e.method,
                e.route.as_deref().unwrap_or("-"),
                e.status,
                e.outcome,
                e.request_id,
            );
        }
        let count = |a: Access| {
            self.events
                .iter()
                .filter(|e| e.access == a && e.outcome == "allowed")
                .count()
        };
        let refused = self
            .events
            .iter()
            .filter(|e| e.outcome != "allowed")
            .count();
        let verified = match self.chains.as_slice() {
            [_] => format!(
                "chain ok: {} records verified, last hash {}",
                self.records_verified, self.last_hash
            ),
            chains => {
                let n = |s: ChainStatus| chains.iter().filter(|c| c.status == s).count();
                format!(
                    "{} chains ok ({} sealed, {} open): {} records verified",
                    chains.len(),
                    n(ChainStatus::Sealed),
                    n(ChainStatus::Open),
                    self.records_verified
                )
            }
        };
        let _ = writeln!(
            out,
            "{}: {} reads, {} changes, {} deletions allowed, {} refused; {verified}",
            self.subject,
            count(Access::Read),
            count(Access::Change),
            count(Access::Delete),
            refused,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_concern_a_subject_by_resource_ids_subjects_or_possibly() {
        let base = |extra: Value| {
            let mut r = json!({"seq": 1, "time": "t", "method": "GET", "status": 200,
                "request_id": "r", "principal": {"id": "agent-7", "roles": ["support_agent"]}});
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
            r
        };
        let by_resource = base(json!({"resource": {"type": "Customer", "id": "c-1001"}}));
        assert_eq!(
            event(&by_resource, "c-1001").unwrap().matched,
            Matched::Resource
        );
        let listing = base(json!({"response_body": {"disclosed": [
            {"entity": "Customer", "count": 60, "ids": [["c-1001", "c-1060"]]},
            {"entity": "Order", "count": 2, "ids": ["o-1"], "subjects": {"ids": ["c-2001"]}},
        ]}}));
        assert_eq!(event(&listing, "c-1033").unwrap().records, ["Customer"]);
        assert_eq!(event(&listing, "c-2001").unwrap().records, ["Order"]);
        assert!(event(&listing, "c-1061").is_none());
        let beyond = base(json!({"response_body": {"disclosed": [
            {"entity": "Customer", "count": 9000, "ids": ["c-1"], "omitted": 8999},
        ]}}));
        assert_eq!(event(&beyond, "c-5").unwrap().matched, Matched::Possibly);
        let delete = base(
            json!({"method": "DELETE", "status": 403, "refusal": "forbidden",
            "resource": {"type": "Customer", "id": "c-1001"}}),
        );
        let e = event(&delete, "c-1001").unwrap();
        assert_eq!(
            (e.access, e.outcome.as_str()),
            (Access::Delete, "forbidden")
        );
    }
}
