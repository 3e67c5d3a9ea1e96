//! Image pulls for the supervisor, the way the kubelet's image manager does them: the pull
//! policy decides between the local store and a pull; a pull runs in a child process
//! (`peapod __pull <ref>`) so the supervisor stays single-threaded and small; failures put the
//! container in ErrImagePull, then ImagePullBackOff with a per-image back-off of 10s doubling
//! to 300s; events say `Pulling image`, `Successfully pulled image ... in 1.234s`.
//!
//! One child per image reference: several containers of the pod waiting on the same image
//! share it. Two pods pulling one image share the download in the store (blob locks).

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use k8s_openapi::api::core::v1::Secret;

use super::Supervisor;
use crate::gofmt;
use crate::image::registry::auth::ENV_PULL_SECRETS_FILE;
use crate::image::{Image, ImageError, ImageStore, PullOptions};
use crate::manifest::defaults::default_pull_policy;
use crate::manifest::objects::{
    DOCKERCFG_KEY, DOCKER_CONFIG_JSON_KEY, SECRET_TYPE_DOCKERCFG, SECRET_TYPE_DOCKER_CONFIG_JSON,
};
use crate::object::ObjectStore;
use crate::pod::backoff::PullBackoff;
use crate::pod::events;
use crate::pod::machine::Waiting;
use crate::pod::model::{
    REASON_ERR_IMAGE_NEVER_PULL, REASON_ERR_IMAGE_PULL, REASON_IMAGE_PULL_BACK_OFF,
};
use crate::store::{write_atomic_private, Paths};

/// The hidden verb of the pull child: `peapod __pull <reference>`.
pub const PULL_VERB: &str = "__pull";
/// After a failed pull, ErrImagePull shows this long before the back-off takes over (the
/// kubelet's next pod sync comes within seconds and reports ImagePullBackOff).
const ERR_IMAGE_PULL_SHOWN_FOR: Duration = Duration::from_secs(2);

/// The pod's pull secrets, merged, in its runtime directory.
const PULL_SECRETS_FILE: &str = "pull-secrets.json";
/// [pkg/kubelet/events/event.go]
pub const REASON_FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET: &str = "FailedToRetrieveImagePullSecret";

pub const POLICY_ALWAYS: &str = "Always";
pub const POLICY_NEVER: &str = "Never";

/// A pull child in flight.
pub(crate) struct PullJob {
    pub reference: String,
    pub pid: Pid,
    stdout: OwnedFd,
    started: Instant,
    /// Container runs waiting for this image.
    waiters: Vec<usize>,
}

/// The pod's images: resolved ones, pulls in flight, their back-off, the pull secrets file.
#[derive(Default)]
pub(crate) struct Images {
    cache: HashMap<String, Image>,
    /// Pull children in flight, one per image reference.
    jobs: Vec<PullJob>,
    /// Per image reference: the pull back-off and when the next pull may start.
    backoff: HashMap<String, (PullBackoff, Instant)>,
    /// The pod's image pull secrets as a docker config file, for pull children.
    secrets: Option<PathBuf>,
}

impl Images {
    /// No pull in flight.
    pub fn idle(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// What the pull child prints on stdout, one JSON line.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReport {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub repo_digest: Option<String>,
    #[serde(default)]
    pub size: u64,
}

/// The `Successfully pulled image` event text [pkg/kubelet/images/image_manager.go].
pub fn pulled_message(reference: &str, took: Duration, waited: Duration, size: u64) -> String {
    format!(
        "Successfully pulled image \"{reference}\" in {} ({} including waiting). Image size: {size} bytes.",
        gofmt::duration(took),
        gofmt::duration(waited)
    )
}

impl Supervisor {
    /// The pull policy decides whether container `i` can use a local image now (Some), or
    /// waits (None) for a pull, a back-off or a retry; its status and events say which.
    pub(super) fn image_step(&mut self, i: usize) -> Option<Image> {
        let reference = self.runs[i].spec.image.clone().unwrap_or_default();
        let policy = self.runs[i]
            .spec
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&reference).to_string());
        let field = self.runs[i].field_path();
        // As the kubelet's pod sync, every start looks the pull secrets up (and warns about
        // missing ones), whether or not a pull follows.
        self.images.secrets = self.pull_secrets_file(&field);

        // The pull this start waited for has just finished.
        if std::mem::take(&mut self.runs[i].image_pulled) {
            if let Some(img) = self.images.cache.get(&reference) {
                return Some(img.clone());
            }
        }
        if policy != POLICY_ALWAYS {
            match self.local_image(&reference) {
                Ok(img) => {
                    self.event(
                        events::NORMAL,
                        events::REASON_PULLED,
                        &field,
                        format!("Container image \"{reference}\" already present on machine"),
                    );
                    return Some(img);
                }
                Err(ImageError::NotFound { .. }) if policy == POLICY_NEVER => {
                    let message = format!(
                        "Container image \"{reference}\" is not present with pull policy of Never"
                    );
                    self.event(
                        events::WARNING,
                        REASON_ERR_IMAGE_NEVER_PULL,
                        &field,
                        message.clone(),
                    );
                    self.wait_and_retry(
                        i,
                        REASON_ERR_IMAGE_NEVER_PULL,
                        message,
                        format!("Error: {REASON_ERR_IMAGE_NEVER_PULL}"),
                    );
                    return None;
                }
                Err(ImageError::NotFound { .. }) => {}
                Err(e) => {
                    // The store itself failed (unreadable index, corrupt layer): a pull
                    // rewrites what it needs, so try one.
                    tracing::warn!(image = %reference, error = %e, "local image unusable; pulling");
                }
            }
        }
        self.request_pull(i, &reference, &field);
        None
    }

    pub(super) fn local_image(&mut self, reference: &str) -> Result<Image, ImageError> {
        if let Some(img) = self.images.cache.get(reference) {
            // `rmi -f` and `image prune` may have removed the layers since the last start:
            // then look again (and pull, per the policy) rather than mount what is gone.
            if img.layers.iter().all(|l| l.is_dir()) {
                return Ok(img.clone());
            }
            tracing::info!(image = %reference, "cached image lost its layers; resolving again");
            self.images.cache.remove(reference);
        }
        let store = ImageStore::open(&self.paths)?;
        let image = store.resolve(reference)?;
        self.images
            .cache
            .insert(reference.to_string(), image.clone());
        Ok(image)
    }

    /// Joins a pull in flight, waits out the back-off, or starts a pull child.
    fn request_pull(&mut self, i: usize, reference: &str, field: &str) {
        if let Some(job) = self
            .images
            .jobs
            .iter_mut()
            .find(|j| j.reference == reference)
        {
            if !job.waiters.contains(&i) {
                job.waiters.push(i);
            }
            return;
        }
        let now = Instant::now();
        if let Some(until) = self
            .images
            .backoff
            .get(reference)
            .map(|(_, until)| *until)
            .filter(|until| now < *until)
        {
            let message = format!("Back-off pulling image \"{reference}\"");
            self.event(
                events::NORMAL,
                events::REASON_BACKOFF,
                field,
                message.clone(),
            );
            self.event(
                events::WARNING,
                events::REASON_FAILED,
                field,
                format!("Error: {REASON_IMAGE_PULL_BACK_OFF}"),
            );
            self.runs[i].life.wait(
                Waiting {
                    reason: REASON_IMAGE_PULL_BACK_OFF.into(),
                    message: Some(message),
                },
                Some(until),
            );
            self.mark_dirty();
            return;
        }
        self.event(
            events::NORMAL,
            events::REASON_PULLING,
            field,
            format!("Pulling image \"{reference}\""),
        );
        match spawn_pull(reference, self.images.secrets.as_deref()) {
            Ok((pid, stdout)) => {
                tracing::info!(image = %reference, pid = pid.as_raw(), "pulling image");
                self.images.jobs.push(PullJob {
                    reference: reference.to_string(),
                    pid,
                    stdout,
                    started: now,
                    waiters: vec![i],
                });
            }
            Err(e) => {
                let message = format!("cannot start the image pull: {e}");
                self.pull_failed(reference, vec![i], message);
            }
        }
    }

    /// Reaped `pid`: true when it was a pull child (and its result has been handled).
    pub(super) fn on_pull_exit(&mut self, pid: Pid, exit_code: i32) -> bool {
        let Some(pos) = self.images.jobs.iter().position(|j| j.pid == pid) else {
            return false;
        };
        let job = self.images.jobs.swap_remove(pos);
        let took = job.started.elapsed();
        let mut out = String::new();
        let _ = File::from(job.stdout).read_to_string(&mut out);
        let report: Option<PullReport> =
            out.lines().rev().find_map(|l| serde_json::from_str(l).ok());
        if !matches!(self.pod_run, super::stop::PodRun::Active { .. }) {
            return true;
        }
        match report {
            Some(PullReport {
                ok: true,
                repo_digest,
                size,
                ..
            }) => self.pull_succeeded(&job.reference, job.waiters, repo_digest, size, took),
            Some(PullReport { error, .. }) => {
                let message = error.unwrap_or_else(|| "unknown error".into());
                self.pull_failed(&job.reference, job.waiters, message)
            }
            None => {
                let message = format!("the pull process ended with exit code {exit_code}");
                self.pull_failed(&job.reference, job.waiters, message)
            }
        }
        true
    }

    fn pull_succeeded(
        &mut self,
        reference: &str,
        waiters: Vec<usize>,
        repo_digest: Option<String>,
        size: u64,
        took: Duration,
    ) {
        self.images.backoff.remove(reference);
        self.images.cache.remove(reference);
        let image = match self.local_image(reference) {
            Ok(mut img) => {
                if img.repo_digest.is_none() {
                    img.repo_digest = repo_digest;
                }
                self.images.cache.insert(reference.to_string(), img.clone());
                img
            }
            Err(e) => {
                self.pull_failed(reference, waiters, e.to_string());
                return;
            }
        };
        tracing::info!(image = %reference, id = %image.id, ?took, "image pulled");
        let now = Instant::now();
        for i in waiters {
            let field = self.runs[i].field_path();
            self.event(
                events::NORMAL,
                events::REASON_PULLED,
                &field,
                pulled_message(reference, took, took, size),
            );
            let r = &mut self.runs[i];
            if r.life.instance().is_none() {
                r.image_pulled = true;
                r.life.schedule(Some(now));
            }
        }
        self.mark_dirty();
    }

    fn pull_failed(&mut self, reference: &str, waiters: Vec<usize>, message: String) {
        let now = Instant::now();
        let entry = self
            .images
            .backoff
            .entry(reference.to_string())
            .or_insert_with(|| (PullBackoff::default(), now));
        let delay = entry.0.on_failure();
        entry.1 = now + delay;
        tracing::warn!(image = %reference, error = %message, retry_in = ?delay, "image pull failed");
        for i in waiters {
            let field = self.runs[i].field_path();
            self.event(
                events::WARNING,
                events::REASON_FAILED,
                &field,
                format!("Failed to pull image \"{reference}\": {message}"),
            );
            self.event(
                events::WARNING,
                events::REASON_FAILED,
                &field,
                format!("Error: {REASON_ERR_IMAGE_PULL}"),
            );
            // The next look comes soon and finds the back-off running: ImagePullBackOff.
            self.runs[i].life.wait(
                Waiting {
                    reason: REASON_ERR_IMAGE_PULL.into(),
                    message: Some(message.clone()),
                },
                Some(now + ERR_IMAGE_PULL_SHOWN_FOR.min(delay)),
            );
        }
        self.mark_dirty();
    }

    /// The pod's `imagePullSecrets` as one docker config file in its runtime directory (a
    /// tmpfs, mode 0600), for the pull child to read ahead of the node's credentials, as the
    /// kubelet does [pkg/kubelet/images: MakeDockerKeyring of the pull secrets, then the
    /// node's keyring]. Secrets that do not exist are named in the kubelet's
    /// `FailedToRetrieveImagePullSecret` event and the pull goes on without them. None when
    /// the pod names no usable secret.
    fn pull_secrets_file(&mut self, field: &str) -> Option<PathBuf> {
        let names: Vec<String> = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return None;
        }
        let store = ObjectStore::new(&self.paths);
        let mut auths = serde_json::Map::new();
        let mut missing = Vec::new();
        for name in &names {
            match store.get::<Secret>(self.namespace(), name) {
                Ok(Some(secret)) => {
                    for (host, entry) in docker_auths(&secret) {
                        auths.entry(host).or_insert(entry);
                    }
                }
                Ok(None) => missing.push(name.clone()),
                Err(e) => {
                    tracing::warn!(secret = %name, error = %e, "cannot read image pull secret");
                    missing.push(name.clone());
                }
            }
        }
        if !missing.is_empty() {
            self.event(
                events::WARNING,
                REASON_FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET,
                field,
                format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    missing.join(", ")
                ),
            );
        }
        if auths.is_empty() {
            return None;
        }
        let file = self.paths.pod_run_dir(&self.uid).join(PULL_SECRETS_FILE);
        let doc = serde_json::json!({ "auths": auths });
        match write_atomic_private(&file, doc.to_string().as_bytes()) {
            Ok(()) => Some(file),
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the pod's pull secrets; pulling without them");
                None
            }
        }
    }

    /// Stops every pull in flight (the pod is going away); they are reaped as usual.
    pub(super) fn kill_pulls(&mut self) {
        for job in &self.images.jobs {
            // The child is ours and not yet reaped, so the PID is still its own.
            let _ = kill(job.pid, Signal::SIGKILL);
        }
    }
}

/// The `auths` entries of a pull secret: a `kubernetes.io/dockerconfigjson` Secret's
/// `.dockerconfigjson` (`{"auths": {...}}`) or a legacy `kubernetes.io/dockercfg` Secret's
/// `.dockercfg` (the entries at the top level). The kubelet uses no other type.
fn docker_auths(secret: &Secret) -> serde_json::Map<String, serde_json::Value> {
    let data = secret.data.as_ref();
    let parse = |key: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&data?.get(key)?.0).ok()
    };
    let found = match secret.type_.as_deref() {
        Some(SECRET_TYPE_DOCKER_CONFIG_JSON) => {
            parse(DOCKER_CONFIG_JSON_KEY).and_then(|v| v.get("auths").cloned())
        }
        Some(SECRET_TYPE_DOCKERCFG) => parse(DOCKERCFG_KEY),
        _ => None,
    };
    match found {
        Some(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// Starts `peapod __pull <reference>` with its stdout on a pipe. The child inherits the
/// environment (registries config and auth file locations), gets the pod's pull secrets file
/// if there is one, and logs to our stderr.
fn spawn_pull(reference: &str, secrets: Option<&Path>) -> std::io::Result<(Pid, OwnedFd)> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(PULL_VERB)
        .arg(reference)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match secrets {
        Some(file) => cmd.env(ENV_PULL_SECRETS_FILE, file),
        None => cmd.env_remove(ENV_PULL_SECRETS_FILE),
    };
    // The pull is the supervisor's: if the supervisor dies (SIGKILL, a crash), the child goes
    // with it instead of outliving the pod's delete (prctl(2), PR_SET_PDEATHSIG; kept across
    // execve). A supervisor that died before the prctl is seen as a changed parent.
    let supervisor = std::process::id() as libc::pid_t;
    // SAFETY: prctl, getppid and _exit are async-signal-safe and touch no memory of ours.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != supervisor {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
    // The supervisor reaps every child itself (waitpid(-1) on SIGCHLD); the handle is dropped
    // without waiting.
    Ok((Pid::from_raw(child.id() as i32), OwnedFd::from(stdout)))
}

/// Entry point of `peapod __pull <reference>`: pulls into the store and prints one
/// [`PullReport`] line on stdout. Exit code 0 on success, 1 on failure.
pub fn pull_main(reference: &str) -> i32 {
    super::init_logging();
    let paths = Paths::from_env();
    let result = ImageStore::open(&paths).and_then(|store| {
        let opts = PullOptions::from_env(&paths)?;
        store.pull(reference, &opts, &|_| {})
    });
    let (report, code) = match result {
        Ok(outcome) => (
            PullReport {
                ok: true,
                error: None,
                repo_digest: Some(outcome.repo_digest),
                size: outcome.size,
            },
            0,
        ),
        Err(e) => (
            PullReport {
                ok: false,
                error: Some(e.to_string()),
                repo_digest: None,
                size: 0,
            },
            1,
        ),
    };
    match serde_json::to_string(&report) {
        Ok(line) => println!("{line}"),
        Err(_) => return 1,
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_secrets_of_both_docker_types_give_auths() {
        use k8s_openapi::ByteString;
        let secret = |type_: &str, key: &str, json: &str| Secret {
            type_: Some(type_.into()),
            data: Some([(key.to_string(), ByteString(json.as_bytes().to_vec()))].into()),
            ..Default::default()
        };
        let new = secret(
            SECRET_TYPE_DOCKER_CONFIG_JSON,
            DOCKER_CONFIG_JSON_KEY,
            r#"{"auths":{"r:5000":{"auth":"dTpw"}}}"#,
        );
        assert_eq!(docker_auths(&new)["r:5000"]["auth"], "dTpw");
        let legacy = secret(
            SECRET_TYPE_DOCKERCFG,
            DOCKERCFG_KEY,
            r#"{"r:5000":{"auth":"dTpw"}}"#,
        );
        assert_eq!(docker_auths(&legacy)["r:5000"]["auth"], "dTpw");
        let opaque = secret("Opaque", DOCKER_CONFIG_JSON_KEY, r#"{"auths":{"r":{}}}"#);
        assert!(docker_auths(&opaque).is_empty());
        let broken = secret(SECRET_TYPE_DOCKER_CONFIG_JSON, DOCKER_CONFIG_JSON_KEY, "{");
        assert!(docker_auths(&broken).is_empty());
    }

    #[test]
    fn pulled_event_text_matches_the_kubelet() {
        assert_eq!(
            pulled_message("busybox", Duration::from_millis(1234), Duration::from_millis(1234), 2_000_000),
            "Successfully pulled image \"busybox\" in 1.234s (1.234s including waiting). Image size: 2000000 bytes."
        );
    }
}
