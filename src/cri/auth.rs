//! A `PullImageRequest`'s `AuthConfig` as the credentials of one pull, read as containerd's
//! CRI plugin reads it (`ParseAuth`): `username`/`password` first, then `auth`
//! (base64 `user:password`), then `registry_token` (a bearer token sent to the registry as it
//! is). `server_address`, when set, limits the credentials to that registry host. No auth at all
//! leaves the pull to peapod's credentials files; an empty one means anonymous.

use base64::Engine as _;
use k8s_cri::v1 as cri;

use crate::image::{Credential, PullAuth, PullSecret};

/// Why an `AuthConfig` cannot be used; each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("auth.auth: invalid base64: {0}")]
    Base64(String),
    #[error("auth.auth: the decoded value is not \"user:password\"")]
    NoColon,
    #[error("auth.identity_token: OAuth2 identity (refresh) tokens are not supported by peapod's registry client; pass username and password, or registry_token")]
    IdentityToken,
}

/// The credentials of a pull; `None` when the request carries no `AuthConfig`.
pub fn pull_auth(auth: Option<&cri::AuthConfig>) -> Result<Option<PullAuth>, AuthError> {
    let Some(a) = auth else { return Ok(None) };
    let server = Some(a.server_address.trim())
        .filter(|s| !s.is_empty())
        .map(String::from);
    let secret = if !a.username.is_empty() {
        PullSecret::Basic(Credential {
            username: a.username.clone(),
            password: a.password.clone(),
        })
    } else if !a.identity_token.is_empty() {
        return Err(AuthError::IdentityToken);
    } else if !a.auth.is_empty() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.auth.trim())
            .map_err(|e| AuthError::Base64(e.to_string()))?;
        let text = String::from_utf8_lossy(&raw);
        let (user, password) = text.split_once(':').ok_or(AuthError::NoColon)?;
        PullSecret::Basic(Credential {
            username: user.to_string(),
            password: password.trim_end_matches('\0').to_string(),
        })
    } else if !a.registry_token.is_empty() {
        PullSecret::Bearer(a.registry_token.clone())
    } else {
        PullSecret::Anonymous
    };
    Ok(Some(PullAuth { server, secret }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> PullSecret {
        PullSecret::Basic(Credential {
            username: u.into(),
            password: p.into(),
        })
    }

    #[test]
    fn reads_each_kind_in_containerds_order() {
        assert_eq!(pull_auth(None), Ok(None));
        let empty = cri::AuthConfig::default();
        assert_eq!(
            pull_auth(Some(&empty)).unwrap().unwrap().secret,
            PullSecret::Anonymous
        );
        let user = cri::AuthConfig {
            username: "u".into(),
            password: "p".into(),
            auth: "ignored".into(),
            ..Default::default()
        };
        assert_eq!(
            pull_auth(Some(&user)).unwrap().unwrap().secret,
            basic("u", "p")
        );
        let encoded = cri::AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("peapod:pa:ss"),
            server_address: "https://127.0.0.1:5000".into(),
            ..Default::default()
        };
        let got = pull_auth(Some(&encoded)).unwrap().unwrap();
        assert_eq!(got.secret, basic("peapod", "pa:ss"));
        assert_eq!(got.server.as_deref(), Some("https://127.0.0.1:5000"));
        let token = cri::AuthConfig {
            registry_token: "tok".into(),
            ..Default::default()
        };
        assert_eq!(
            pull_auth(Some(&token)).unwrap().unwrap().secret,
            PullSecret::Bearer("tok".into())
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let bad = |a: cri::AuthConfig| pull_auth(Some(&a)).unwrap_err().to_string();
        let e = bad(cri::AuthConfig {
            auth: "%%%".into(),
            ..Default::default()
        });
        assert!(e.starts_with("auth.auth: invalid base64"), "{e}");
        let e = bad(cri::AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("nocolon"),
            ..Default::default()
        });
        assert!(e.contains("user:password"), "{e}");
        let e = bad(cri::AuthConfig {
            identity_token: "refresh".into(),
            ..Default::default()
        });
        assert!(e.starts_with("auth.identity_token"), "{e}");
    }
}
