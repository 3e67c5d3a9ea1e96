//! `apply -f` and `create -f` (and `run`, which makes its pod the same way): decode every
//! document of every source first, then store ConfigMaps, Secrets and claims, then pods, and
//! print each outcome as kubectl does [kubectl pkg/cmd/apply/apply.go, create/create.go]. A pod
//! that exists is compared with its manifest as the API server's update validation does
//! ([`crate::pod::update`]): `pod/x unchanged`, `pod/x configured` (the supervisor follows),
//! or the API server's field errors.

use anyhow::{bail, Result};

use super::sources::Sources;
use crate::manifest::Object;
use crate::object::{ObjectError, ObjectStore, PutMode, PutOutcome};
use crate::pod::lifecycle::{self, ApplyOutcome};
use crate::pod::update::{self, PodUpdate};
use crate::store::Paths;

/// Applies `pod` to the pod of that name if there is one: the line to print (Ok: stdout,
/// Err: stderr), or None when there is no such pod.
fn update_pod(
    paths: &Paths,
    pod: &k8s_openapi::api::core::v1::Pod,
) -> Result<Option<Result<String, String>>> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let Some(existing) = crate::pod::record::find(paths, namespace, name)? else {
        return Ok(None);
    };
    let change = update::classify(&existing.pod, pod);
    Ok(Some(match &change {
        PodUpdate::Unchanged => Ok(format!("pod/{name} unchanged")),
        PodUpdate::Invalid(causes) => Err(format!(
            "The Pod \"{name}\" is invalid: {}",
            crate::object::render_causes(causes)
        )),
        PodUpdate::Configured { .. } => {
            update::store(paths, namespace, name, &change)?;
            Ok(format!("pod/{name} configured"))
        }
    }))
}

/// `apply -f` / `create -f`. Every document is decoded and validated first: one bad document
/// and nothing is stored. Then ConfigMaps, Secrets and claims are stored before any pod starts
/// (a pod never waits for an object of its own file), and each object's outcome is printed in
/// file order; an object the store refuses (immutable, AlreadyExists) is reported and the
/// others go on, as kubectl does.
/// `dry_run`: the suffix of a dry run's messages (`cli::dry_run_suffix`): nothing is stored.
pub fn run(paths: &Paths, files: &Sources, dry_run: Option<&str>, mode: PutMode) -> Result<i32> {
    let objects = files.decode()?;
    crate::starttrace::mark("cli decoded");
    if objects.is_empty() {
        let verb = if mode == PutMode::Create {
            "create"
        } else {
            "apply"
        };
        bail!("no objects passed to {verb}");
    }
    if let Some(suffix) = dry_run {
        for o in &objects {
            println!("{}/{} created {suffix}", o.kind_name(), o.name());
        }
        return Ok(0);
    }
    put_objects(paths, objects, mode)
}

/// Stores `objects` (decoded and validated) and prints each outcome, as `apply`/`create` do.
pub fn put_objects(paths: &Paths, objects: Vec<Object>, mode: PutMode) -> Result<i32> {
    put(paths, objects, mode, false)
}

/// Creates one object, printing only a refusal (`run -o yaml` prints the object instead).
pub fn put_quietly(paths: &Paths, object: Object) -> Result<i32> {
    put(paths, vec![object], PutMode::Create, true)
}

fn put(paths: &Paths, objects: Vec<Object>, mode: PutMode, quiet: bool) -> Result<i32> {
    let store = ObjectStore::new(paths);
    let mut lines: Vec<Option<Result<String, String>>> = vec![None; objects.len()];
    let mut pods = Vec::new();
    for (i, object) in objects.into_iter().enumerate() {
        let kind = object.kind_name();
        let name = object.name().to_string();
        let outcome = match object {
            Object::Pod(pod) => {
                if mode == PutMode::Apply {
                    if let Some(line) = update_pod(paths, &pod)? {
                        lines[i] = Some(line);
                        continue;
                    }
                }
                pods.push((i, *pod));
                continue;
            }
            Object::ConfigMap(o) => store.put(*o, mode).map(|(_, out)| out),
            Object::Secret(o) => store.put(*o, mode).map(|(_, out)| out),
            Object::PersistentVolumeClaim(o) => store.put(*o, mode).and_then(|(claim, out)| {
                if out == PutOutcome::Created {
                    crate::volume::claim::on_created(paths, &claim)?;
                }
                Ok(out)
            }),
        };
        lines[i] = Some(match outcome {
            Ok(out) => Ok(format!("{kind}/{name} {}", out.as_str())),
            Err(e) => Err(server_error(&e)),
        });
    }
    let (positions, pods): (Vec<usize>, Vec<_>) = pods.into_iter().unzip();
    if !pods.is_empty() {
        for (i, outcome) in positions.into_iter().zip(lifecycle::apply(paths, pods)?) {
            lines[i] = Some(match outcome {
                ApplyOutcome::Created { name, .. } => Ok(format!("pod/{name} created")),
                ApplyOutcome::AlreadyExists { name, .. } => Err(format!(
                    "Error from server (AlreadyExists): pods \"{name}\" already exists"
                )),
            });
        }
    }
    let mut code = 0;
    for line in lines.into_iter().flatten() {
        match line {
            Ok(text) if !quiet => println!("{text}"),
            Ok(_) => {}
            Err(text) => {
                eprintln!("{text}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// An object store error as kubectl prints the API server's answer.
pub fn server_error(e: &ObjectError) -> String {
    match e {
        ObjectError::AlreadyExists { .. } => format!("Error from server (AlreadyExists): {e}"),
        ObjectError::NotFound { .. } => format!("Error from server (NotFound): {e}"),
        ObjectError::Invalid { .. } => format!("The {e}"),
        ObjectError::Store(_) => format!("error: {e}"),
    }
}
