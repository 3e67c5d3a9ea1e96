//! The kinds the verbs take, with kubectl's names for them: every verb resolves its KIND
//! argument here, so `get`, `describe`, `delete` and `wait` agree on what `cm` or `pvc` means
//! and answer an unknown name with kubectl's words.

use anyhow::{bail, Result};

/// A kind peapod serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Pod,
    ConfigMap,
    Secret,
    PersistentVolumeClaim,
    PersistentVolume,
    /// Read-only: the events pods and stored objects recorded, listed by `get events`.
    Event,
}

struct Names {
    kind: Kind,
    /// The resource (plural), as in `configmaps "x" not found`.
    resource: &'static str,
    /// kubectl's lower-case kind, as in `configmap/x created`.
    singular: &'static str,
    /// The short names of `kubectl api-resources`.
    short: &'static [&'static str],
    namespaced: bool,
}

const KINDS: &[Names] = &[
    Names {
        kind: Kind::Pod,
        resource: "pods",
        singular: "pod",
        short: &["po"],
        namespaced: true,
    },
    Names {
        kind: Kind::ConfigMap,
        resource: "configmaps",
        singular: "configmap",
        short: &["cm"],
        namespaced: true,
    },
    Names {
        kind: Kind::Secret,
        resource: "secrets",
        singular: "secret",
        short: &[],
        namespaced: true,
    },
    Names {
        kind: Kind::PersistentVolumeClaim,
        resource: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        short: &["pvc"],
        namespaced: true,
    },
    Names {
        kind: Kind::PersistentVolume,
        resource: "persistentvolumes",
        singular: "persistentvolume",
        short: &["pv"],
        namespaced: false,
    },
    Names {
        kind: Kind::Event,
        resource: "events",
        singular: "event",
        short: &["ev"],
        namespaced: true,
    },
];

impl Kind {
    fn names(self) -> &'static Names {
        // Every Kind has a row; the fallback is never taken.
        KINDS.iter().find(|n| n.kind == self).unwrap_or(&KINDS[0])
    }

    /// The kind of a decoded manifest object.
    pub fn of(o: &crate::manifest::Object) -> Kind {
        use crate::manifest::Object;
        match o {
            Object::Pod(_) => Kind::Pod,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Secret(_) => Kind::Secret,
            Object::PersistentVolumeClaim(_) => Kind::PersistentVolumeClaim,
        }
    }

    /// The kind a user's word names: plural, singular or short name, any case, as kubectl's
    /// RESTMapper takes them.
    pub fn resolve(word: &str) -> Result<Kind> {
        let lower = word.to_ascii_lowercase();
        KINDS
            .iter()
            .find(|n| n.resource == lower || n.singular == lower || n.short.contains(&&*lower))
            .map(|n| n.kind)
            .ok_or_else(|| anyhow::anyhow!("the server doesn't have a resource type \"{word}\""))
    }

    /// A comma list (`cm,secret`), in the order given, without repeats.
    pub fn resolve_list(words: &str) -> Result<Vec<Kind>> {
        let mut kinds = Vec::new();
        for word in words.split(',') {
            if word.is_empty() {
                bail!("the server doesn't have a resource type \"\"");
            }
            let kind = Kind::resolve(word)?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(kinds)
    }

    /// `configmaps`
    pub fn resource(self) -> &'static str {
        self.names().resource
    }

    /// `configmap`
    pub fn singular(self) -> &'static str {
        self.names().singular
    }

    pub fn namespaced(self) -> bool {
        self.names().namespaced
    }

    /// kubectl's NotFound line: `Error from server (NotFound): configmaps "x" not found`.
    pub fn not_found(self, name: &str) -> String {
        format!(
            "Error from server (NotFound): {} \"{name}\" not found",
            self.resource()
        )
    }
}

/// Splits `get`/`delete`/`describe` arguments into (kind, names): `KIND NAME...`, or
/// `KIND/NAME...` (each argument naming its own kind).
pub fn targets(args: &[String]) -> Result<Vec<(Kind, Vec<String>)>> {
    let Some(first) = args.first() else {
        bail!("You must specify the type of resource to get.");
    };
    if first.contains('/') {
        let mut out: Vec<(Kind, Vec<String>)> = Vec::new();
        for arg in args {
            let Some((kind, name)) = arg
                .split_once('/')
                .filter(|(k, n)| !k.is_empty() && !n.is_empty() && !n.contains('/'))
            else {
                bail!("arguments in resource/name form must have a single resource and name");
            };
            let kind = Kind::resolve(kind)?;
            match out.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, names)) => names.push(name.to_string()),
                None => out.push((kind, vec![name.to_string()])),
            }
        }
        return Ok(out);
    }
    let names = args[1..].to_vec();
    if names.iter().any(|n| n.contains('/')) {
        bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' instead of 'kubectl get resource resource/<resource_name>'");
    }
    Ok(Kind::resolve_list(first)?
        .into_iter()
        .map(|k| (k, names.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        for (word, kind) in [
            ("pods", Kind::Pod),
            ("po", Kind::Pod),
            ("cm", Kind::ConfigMap),
            ("ConfigMap", Kind::ConfigMap),
            ("secret", Kind::Secret),
            ("pvc", Kind::PersistentVolumeClaim),
            ("persistentvolumeclaims", Kind::PersistentVolumeClaim),
            ("pv", Kind::PersistentVolume),
            ("persistentvolume", Kind::PersistentVolume),
            ("ev", Kind::Event),
            ("events", Kind::Event),
        ] {
            assert_eq!(Kind::resolve(word).unwrap(), kind, "{word}");
        }
        assert_eq!(
            Kind::resolve("deploy").unwrap_err().to_string(),
            "the server doesn't have a resource type \"deploy\""
        );
        assert_eq!(
            Kind::resolve_list("cm,secret,cm").unwrap(),
            [Kind::ConfigMap, Kind::Secret]
        );
        assert!(!Kind::PersistentVolume.namespaced());
        assert_eq!(
            Kind::ConfigMap.not_found("x"),
            "Error from server (NotFound): configmaps \"x\" not found"
        );
    }

    #[test]
    fn targets_take_both_forms() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            targets(&args(&["cm", "a", "b"])).unwrap(),
            [(Kind::ConfigMap, vec!["a".to_string(), "b".to_string()])]
        );
        assert_eq!(
            targets(&args(&["cm/a", "secret/s", "configmap/b"])).unwrap(),
            [
                (Kind::ConfigMap, vec!["a".to_string(), "b".to_string()]),
                (Kind::Secret, vec!["s".to_string()])
            ]
        );
        assert!(targets(&args(&["cm", "secret/s"])).is_err());
    }
}
