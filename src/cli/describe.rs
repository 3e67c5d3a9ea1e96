//! `peapod describe pod`: kubectl's describe layout.
use crate::pod::record::PodRecord;
use jiff::Timestamp;
pub fn describe_pod(_rec: &PodRecord, _now: Timestamp, _node: &str) -> String {
    String::new()
}
