//! Parsed resource requests and limits, and the pod's QoS class.
//! (Types shared by the manifest and container modules; the parsing lives beside them.)

use serde::{Deserialize, Serialize};

/// One container's cpu and memory requests and limits, parsed from quantities.
/// A limit without a request makes the request equal to the limit, as the API server does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_request_millis: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_request_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

/// The pod's quality-of-service class [pkg/apis/core/v1/helper/qos].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}
