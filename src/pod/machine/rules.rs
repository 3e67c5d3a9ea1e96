//! A container's own restart policy and `restartPolicyRules` [KEP-5307 container restart
//! rules, KEP-5532 RestartAllContainers]: a container-level `restartPolicy` overrides the
//! pod's; its rules, checked in order against the exit code, may restart it whatever the
//! policy says (`Restart`) or restart every container of the pod in the same sandbox
//! (`RestartAllContainers`) [pkg/api/v1/pod/util.go ContainerShouldRestart,
//! findMatchingContainerRestartRule; pkg/kubelet/container/helpers.go
//! ShouldAllContainersRestart].

use k8s_openapi::api::core::v1::{Container, ContainerRestartRule, Pod};

use super::RestartPolicy;

/// `restartPolicyRules[].action` values [core/v1 ContainerRestartRuleAction].
pub const ACTION_RESTART: &str = "Restart";
pub const ACTION_RESTART_ALL_CONTAINERS: &str = "RestartAllContainers";
/// `restartPolicyRules[].exitCodes.operator` values [ContainerRestartRuleOnExitCodesOperator].
pub const OPERATOR_IN: &str = "In";
pub const OPERATOR_NOT_IN: &str = "NotIn";

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Restart this container, whatever its restart policy says.
    Restart,
    /// Stop every container of the pod and run them all again from the first init container,
    /// in the same sandbox.
    RestartAllContainers,
}

/// One rule: an action taken when the exit code is `In` (or `NotIn`) `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: RuleAction,
    pub not_in: bool,
    pub values: Vec<i32>,
}

impl Rule {
    /// A rule of the spec; None for what the kubelet skips (no exitCodes, an unknown operator
    /// or action: validation refuses those before they get here).
    fn of(r: &ContainerRestartRule) -> Option<Rule> {
        let codes = r.exit_codes.as_ref()?;
        let not_in = match codes.operator.as_str() {
            OPERATOR_IN => false,
            OPERATOR_NOT_IN => true,
            _ => return None,
        };
        let action = match r.action.as_str() {
            ACTION_RESTART => RuleAction::Restart,
            ACTION_RESTART_ALL_CONTAINERS => RuleAction::RestartAllContainers,
            _ => return None,
        };
        Some(Rule {
            action,
            not_in,
            values: codes.values.clone().unwrap_or_default(),
        })
    }

    fn matches(&self, code: i32) -> bool {
        self.values.contains(&code) != self.not_in
    }
}

/// How one container is restarted: the pod's policy, its own (overriding it), its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPolicy {
    pub pod: RestartPolicy,
    /// The container's `restartPolicy`. For an init container, `Always` makes it a sidecar.
    pub own: Option<RestartPolicy>,
    pub rules: Vec<Rule>,
}

impl From<RestartPolicy> for ContainerPolicy {
    fn from(pod: RestartPolicy) -> Self {
        ContainerPolicy {
            pod,
            own: None,
            rules: Vec::new(),
        }
    }
}

fn parse_policy(p: &str) -> Option<RestartPolicy> {
    match p {
        "Always" => Some(RestartPolicy::Always),
        "OnFailure" => Some(RestartPolicy::OnFailure),
        "Never" => Some(RestartPolicy::Never),
        _ => None,
    }
}

impl ContainerPolicy {
    pub fn of(pod: &Pod, c: &Container) -> ContainerPolicy {
        ContainerPolicy {
            pod: RestartPolicy::of(pod),
            own: c.restart_policy.as_deref().and_then(parse_policy),
            rules: c
                .restart_policy_rules
                .iter()
                .flatten()
                .filter_map(Rule::of)
                .collect(),
        }
    }

    /// The first rule the exit code matches; rules count only with a container-level policy
    /// (the API server requires one with rules).
    pub fn matching(&self, code: i32) -> Option<RuleAction> {
        self.own?;
        self.rules
            .iter()
            .find(|r| r.matches(code))
            .map(|r| r.action)
    }

    /// The policy in force: the container's own, else the pod's.
    pub fn effective(&self) -> RestartPolicy {
        self.own.unwrap_or(self.pod)
    }

    /// Whether an exit with `code` restarts the container by itself: a `Restart` rule that
    /// matches, else the policy in force (a matching `RestartAllContainers` rule falls through
    /// to it) [ContainerShouldRestart].
    pub fn should_restart(&self, code: i32) -> bool {
        if self.matching(code) == Some(RuleAction::Restart) {
            return true;
        }
        match self.effective() {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Never => false,
        }
    }

    /// Whether an exit with `code` restarts every container of the pod.
    pub fn restarts_all(&self, code: i32) -> bool {
        self.matching(code) == Some(RuleAction::RestartAllContainers)
    }

    /// Whether any rule may restart the whole pod (which then reports the
    /// `AllContainersRestarting` condition) [podutil.AllContainersCouldRestart].
    pub fn may_restart_all(&self) -> bool {
        self.own.is_some()
            && self
                .rules
                .iter()
                .any(|r| r.action == RuleAction::RestartAllContainers)
    }
}

/// The decisions' view of a restart policy: the pod's alone, or a container's with its rules.
pub trait Policy {
    /// Whether an exit with `code` restarts the container (app and init containers).
    fn should_restart(&self, code: i32) -> bool;
    /// Whether a liveness or startup kill restarts it: anything but Never in force
    /// [computePodActions: shouldRestartOnFailure].
    fn restarts_on_failure(&self) -> bool;
}

impl Policy for RestartPolicy {
    fn should_restart(&self, code: i32) -> bool {
        ContainerPolicy::from(*self).should_restart(code)
    }
    fn restarts_on_failure(&self) -> bool {
        *self != RestartPolicy::Never
    }
}

impl Policy for &ContainerPolicy {
    fn should_restart(&self, code: i32) -> bool {
        ContainerPolicy::should_restart(self, code)
    }
    fn restarts_on_failure(&self) -> bool {
        self.effective() != RestartPolicy::Never
    }
}
