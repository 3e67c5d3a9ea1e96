//! `apply -f` and `create -f` (and `run`, which makes its pod the same way): decode every
//! document of every source first, then store ConfigMaps, Secrets and claims, then pods, and
//! print each outcome as kubectl does [kubectl pkg/cmd/apply/apply.go, create/create.go]. A pod
//! that exists is compared with its manifest as the API server's update validation does
//! ([`crate::pod::update`]): `pod/x unchanged`, `pod/x configured` (the supervisor follows),
//! or the API server's field errors.

use anyhow::{bail, Result};

use super::kinds::Kind;
use super::output::{Output, Printer};
use super::sources::Sources;
use crate::manifest::Object;
use crate::object::{ObjectError, ObjectStore, PutMode, PutOutcome};
use crate::pod::lifecycle::{self, ApplyOutcome};
use crate::pod::update::{self, PodUpdate};
use crate::store::Paths;

/// Applies `pod` to the pod of that name if there is one (`dry`: decides only): its outcome
/// (Ok: the operation, `unchanged` or `configured`; Err: the refusal for stderr), or None when
/// there is no such pod.
fn update_pod(
    paths: &Paths,
    pod: &k8s_openapi::api::core::v1::Pod,
    dry: bool,
) -> Result<Option<Result<String, String>>> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let Some(existing) = crate::pod::record::find(paths, namespace, name)? else {
        return Ok(None);
    };
    let change = update::classify(&existing.pod, pod);
    Ok(Some(match &change {
        PodUpdate::Unchanged => Ok("unchanged".to_string()),
        PodUpdate::Invalid(causes) => Err(format!(
            "The Pod \"{name}\" is invalid: {}",
            crate::object::render_causes(causes)
        )),
        PodUpdate::Configured { .. } => {
            if !dry {
                update::store(paths, namespace, name, &change)?;
            }
            Ok("configured".to_string())
        }
    }))
}

/// `apply -f` / `create -f`. Every document is decoded and validated first: one bad document
/// and nothing is stored. Then ConfigMaps, Secrets and claims are stored before any pod starts
/// (a pod never waits for an object of its own file), and each object's outcome is printed in
/// file order; an object the store refuses (immutable, AlreadyExists) is reported and the
/// others go on, as kubectl does.
/// `dry_run`: the suffix of a dry run's messages (`cli::dry_run_suffix`): nothing is stored.
/// `output`: `-o`; each object printed so instead of its outcome line (kubectl's printers for
/// apply and create: name, json, yaml, jsonpath, go-template; `wide` and the custom columns are
/// `get`'s only).
pub fn run(
    paths: &Paths,
    files: &Sources,
    dry_run: Option<&str>,
    mode: PutMode,
    output: Option<&Output>,
) -> Result<i32> {
    if let Some(o) = output {
        check_output(o)?;
    }
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
        let mut shown = Shown::new(output);
        let mut code = 0;
        for o in &objects {
            match dry_outcome(paths, o, mode, suffix == super::DRY_RUN_CLIENT)? {
                Ok(operation) => shown.add(
                    o.kind_name(),
                    o.name(),
                    format!("{operation} {suffix}"),
                    || value_of(o),
                )?,
                Err(refusal) => {
                    eprintln!("{refusal}");
                    code = 1;
                }
            }
        }
        shown.print()?;
        return Ok(code);
    }
    put(paths, objects, mode, Print::Outcomes(output))
}

/// Stores `objects` (decoded and validated) and prints each outcome, as `apply`/`create` do.
pub fn put_objects(paths: &Paths, objects: Vec<Object>, mode: PutMode) -> Result<i32> {
    put(paths, objects, mode, Print::Outcomes(None))
}

/// Creates one object, printing only a refusal (`run -o yaml` prints the object instead).
pub fn put_quietly(paths: &Paths, object: Object) -> Result<i32> {
    put(paths, vec![object], PutMode::Create, Print::Refusals)
}

/// What `put` prints on stdout.
#[derive(Clone, Copy)]
enum Print<'a> {
    /// Each object's outcome line, or the object itself through `-o`.
    Outcomes(Option<&'a Output>),
    /// Nothing (refusals still go to stderr).
    Refusals,
}

/// Refuses, as kubectl does before doing anything, the formats only `get` has.
fn check_output(o: &Output) -> Result<()> {
    let format = match o {
        Output::Wide => "wide",
        Output::CustomColumns(_) => "custom-columns",
        Output::CustomColumnsFile(_) => "custom-columns-file",
        _ => return Ok(()),
    };
    bail!(
        "unable to match a printer suitable for the output format {format:?}, allowed formats are: {PUT_FORMATS}"
    )
}

/// The formats apply and create take, as kubectl lists them.
const PUT_FORMATS: &str = "go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,yaml";

/// Objects printed as kubectl's printer for apply and create prints them: their outcome lines
/// (`pod/x created`), `-o name`'s `pod/x`, or the objects themselves through `-o`, each in
/// turn (YAML documents separated by `---`).
struct Shown<'a> {
    output: Option<&'a Output>,
    lines: Vec<String>,
    objects: Vec<serde_json::Value>,
}

impl<'a> Shown<'a> {
    fn new(output: Option<&'a Output>) -> Self {
        Shown {
            output,
            lines: Vec::new(),
            objects: Vec::new(),
        }
    }

    /// One object: `operation` is its outcome (`created`, `unchanged`, ...); `object` is read
    /// only when the format prints it.
    fn add(
        &mut self,
        kind: &str,
        name: &str,
        operation: String,
        object: impl FnOnce() -> Result<serde_json::Value>,
    ) -> Result<()> {
        match self.output {
            None => self.lines.push(format!("{kind}/{name} {operation}")),
            Some(Output::Name) => self.lines.push(format!("{kind}/{name}")),
            Some(_) => self.objects.push(object()?),
        }
        Ok(())
    }

    /// Everything at once (a reader that closed the pipe early gets no panic).
    fn print(self) -> Result<()> {
        use std::io::Write;
        let mut text = String::new();
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        if let Some(o) = self.output.filter(|_| !self.objects.is_empty()) {
            let printer = Printer::from_flags(Some(o), None)?;
            for (i, object) in self.objects.into_iter().enumerate() {
                if i > 0 && *o == Output::Yaml {
                    text.push_str("---\n");
                }
                text.push_str(&printer.render(vec![object], true, false)?);
            }
        }
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        Ok(())
    }
}

fn put(paths: &Paths, objects: Vec<Object>, mode: PutMode, print: Print) -> Result<i32> {
    let store = ObjectStore::new(paths);
    // Per object, in file order: its kind and name, then its outcome (Ok: the operation
    // printed on stdout; Err: the refusal printed on stderr).
    let named: Vec<(Kind, String, String)> = objects
        .iter()
        .map(|o| (Kind::of(o), o.namespace().to_string(), o.name().to_string()))
        .collect();
    let mut lines: Vec<Option<Result<String, String>>> = vec![None; objects.len()];
    let mut pods = Vec::new();
    for (i, object) in objects.into_iter().enumerate() {
        let outcome = match object {
            Object::Pod(pod) => {
                if mode == PutMode::Apply {
                    if let Some(line) = update_pod(paths, &pod, false)? {
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
            Ok(out) => Ok(out.as_str().to_string()),
            Err(e) => Err(server_error(&e)),
        });
    }
    let (positions, pods): (Vec<usize>, Vec<_>) = pods.into_iter().unzip();
    if !pods.is_empty() {
        for (i, outcome) in positions.into_iter().zip(lifecycle::apply(paths, pods)?) {
            lines[i] = Some(match outcome {
                ApplyOutcome::Created { .. } => Ok("created".to_string()),
                ApplyOutcome::AlreadyExists { name, .. } => Err(pod_exists(name)),
            });
        }
    }
    let mut code = 0;
    let mut shown = Shown::new(match print {
        Print::Outcomes(output) => output,
        Print::Refusals => None,
    });
    for ((kind, namespace, name), line) in named.iter().zip(lines) {
        match line {
            Some(Ok(operation)) if matches!(print, Print::Outcomes(_)) => {
                shown.add(kind.singular(), name, operation, || {
                    super::get::find(paths, *kind, namespace, name)?
                        .map(|found| found.object)
                        .ok_or_else(|| anyhow::anyhow!("{} {name:?} is gone", kind.singular()))
                })?
            }
            Some(Ok(_)) | None => {}
            Some(Err(text)) => {
                eprintln!("{text}");
                code = 1;
            }
        }
    }
    shown.print()?;
    Ok(code)
}

/// What storing `o` would do, done to nothing: the operation (`created`, `configured`,
/// `unchanged`) or the refusal, as kubectl's dry runs report them. A client dry run of
/// `create` asks nothing of the server: always `created`; `apply` reads the live object even
/// then [kubectl apply.go: the patch is computed against it], and a server dry run checks
/// everything the request would.
fn dry_outcome(
    paths: &Paths,
    o: &Object,
    mode: PutMode,
    client: bool,
) -> Result<Result<String, String>> {
    if client && mode == PutMode::Create {
        return Ok(Ok("created".to_string()));
    }
    let store = ObjectStore::new(paths);
    let outcome = match o {
        Object::Pod(pod) => {
            return Ok(match mode {
                PutMode::Apply => update_pod(paths, pod, true)?,
                PutMode::Create => crate::pod::record::find(paths, o.namespace(), o.name())?
                    .map(|_| Err(pod_exists(o.name().to_string()))),
            }
            .unwrap_or_else(|| Ok("created".to_string())));
        }
        Object::ConfigMap(x) => store.put_dry_run((**x).clone(), mode),
        Object::Secret(x) => store.put_dry_run((**x).clone(), mode),
        Object::PersistentVolumeClaim(x) => store.put_dry_run((**x).clone(), mode),
    };
    Ok(match outcome {
        Ok(out) => Ok(out.as_str().to_string()),
        Err(e) => Err(server_error(&e)),
    })
}

/// An object as decoded from its manifest (a client dry run's `-o`).
fn value_of(o: &Object) -> Result<serde_json::Value> {
    Ok(match o {
        Object::Pod(x) => serde_json::to_value(x)?,
        Object::ConfigMap(x) => serde_json::to_value(x)?,
        Object::Secret(x) => serde_json::to_value(x)?,
        Object::PersistentVolumeClaim(x) => serde_json::to_value(x)?,
    })
}

/// The API server's refusal of a pod created again, as kubectl prints it.
fn pod_exists(name: String) -> String {
    server_error(&ObjectError::AlreadyExists {
        resource: "pods".to_string(),
        name,
    })
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
