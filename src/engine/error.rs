//! Engine failures, classified once, here: callers match on the kind, never on message text.
//!
//! Each kind knows its exit code and fix (see [`crate::error::Advice`]); the engine's own words
//! stay in the message, so what the user reads is unchanged by the classification.

use bollard::errors::Error as BollardError;

use super::Endpoint;
use crate::error::{Advice, Code};

/// A failure talking to the container engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no container engine at unix://{path} (the socket does not exist)")]
    NoSocket { path: String },
    #[error("{endpoint} answered HTTP {status} without an engine's error message")]
    NotAnEngine { endpoint: Endpoint, status: u16 },
    #[error("the container engine at {endpoint} is not running (connection refused)")]
    NotRunning { endpoint: Endpoint },
    #[error("permission denied on the engine socket {endpoint}")]
    Permission { endpoint: Endpoint, hint: String },
    #[error("the engine at {endpoint} did not answer in time")]
    Timeout { endpoint: Endpoint },
    /// The engine answered with an error; `kind` says which, `message` is its own words.
    #[error("the engine refused (HTTP {status}): {message}")]
    Refused { kind: Refusal, status: u16, message: String },
    /// A refusal whose cause and fix berth knows (Podman without its init, rootless Podman
    /// without /dev/net/tun: see `kind::known_refusal`).
    #[error("{what}")]
    Explained { what: String, fix: String },
    /// Anything else (a broken stream, a body that does not parse).
    #[error("talking to the container engine at {endpoint}")]
    Other {
        endpoint: Endpoint,
        #[source]
        source: BollardError,
    },
}

/// What an engine's error answer means to berth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 404: no such container (or other object).
    NotFound,
    /// The image named does not exist on the engine.
    NoSuchImage,
    /// 409: a name already taken, or a state that forbids the call.
    Conflict,
    /// No runtime can hand out the GPUs asked for (the NVIDIA Container Toolkit is missing).
    DeviceDriverMissing,
    /// A device in the plan does not exist where the engine runs.
    DeviceMissing,
    /// A host port is already taken.
    PortTaken,
    /// A bind mount's source does not exist on the engine's machine.
    BindSourceMissing,
    /// Any other refusal.
    Other,
}

impl EngineError {
    /// What the engine refused, if it answered at all.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            EngineError::Refused { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The refusal kind of an engine error anywhere in `err`'s chain.
    pub fn refusal_in(err: &anyhow::Error) -> Option<Refusal> {
        err.chain().find_map(|c| c.downcast_ref::<EngineError>()).and_then(EngineError::refusal)
    }
}

impl Advice for EngineError {
    fn code(&self) -> Code {
        match self {
            EngineError::NoSocket { .. }
            | EngineError::NotAnEngine { .. }
            | EngineError::NotRunning { .. }
            | EngineError::Permission { .. } => Code::NoEngine,
            _ => Code::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            EngineError::NoSocket { path } => super::kind::start_hint(std::path::Path::new(path)).into(),
            EngineError::NotAnEngine { .. } => {
                "check that DOCKER_HOST (or the Docker context) points at a Docker or Podman engine".into()
            }
            EngineError::NotRunning { endpoint: Endpoint::Unix(path) }
                if super::kind::is_podman_socket(path) =>
            {
                super::kind::start_hint(path).into()
            }
            EngineError::NotRunning { .. } => {
                "start it (`sudo systemctl start docker`), or check DOCKER_HOST".into()
            }
            EngineError::Permission { hint, .. } => hint.clone(),
            EngineError::Timeout { .. } => {
                "it may be busy with a large image or container; check that it is \
                                           healthy (`docker info`) and try again"
                    .into()
            }
            EngineError::Refused { .. } => {
                "`berth status` shows the environment; `berth doctor` checks the engine and the host".into()
            }
            EngineError::Explained { fix, .. } => fix.clone(),
            EngineError::Other { .. } => return None,
        })
    }
}

/// Classify a client error: the one place that reads the engine's words.
pub fn classify(err: BollardError, endpoint: &Endpoint) -> EngineError {
    if let BollardError::SocketNotFoundError(path) = &err {
        return EngineError::NoSocket { path: path.clone() };
    }
    if let BollardError::DockerResponseServerError { message, status_code } = &err {
        let status = *status_code;
        if message.trim().is_empty() {
            // Something answered HTTP without an engine's error body (a proxy, another server).
            return EngineError::NotAnEngine { endpoint: endpoint.clone(), status };
        }
        if let Some((what, fix)) = super::kind::known_refusal(message) {
            return EngineError::Explained { what, fix };
        }
        return EngineError::Refused { kind: refusal(status, message), status, message: message.clone() };
    }
    // berth's own requests (`engine::http`) carry the I/O error itself; bollard's, in its chain.
    let io = match &err {
        BollardError::IOError { err } => Some(err),
        other => io_error(other),
    };
    if let Some(io) = io {
        match io.kind() {
            std::io::ErrorKind::PermissionDenied => {
                return EngineError::Permission {
                    endpoint: endpoint.clone(),
                    hint: super::permission_hint(endpoint),
                };
            }
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                return EngineError::NotRunning { endpoint: endpoint.clone() };
            }
            _ => {}
        }
    }
    if matches!(err, BollardError::RequestTimeoutError) {
        return EngineError::Timeout { endpoint: endpoint.clone() };
    }
    EngineError::Other { endpoint: endpoint.clone(), source: err }
}

/// The kind of an engine's error answer, from its status and (where the status is shared by
/// several causes) its message, as Docker and Podman word them.
fn refusal(status: u16, message: &str) -> Refusal {
    if message.contains("No such image") || message.contains("image not known") {
        Refusal::NoSuchImage
    } else if message.contains("could not select device driver") {
        Refusal::DeviceDriverMissing
    } else if message.contains("error gathering device information") {
        Refusal::DeviceMissing
    } else if message.contains("port is already allocated") || message.contains("address already in use") {
        Refusal::PortTaken
    } else if message.contains("bind source path does not exist") {
        Refusal::BindSourceMissing
    } else if status == 404 {
        Refusal::NotFound
    } else if status == 409 || message.contains("is already in use") {
        // Podman answers a taken name with 500 ("the container name \"x\" is already in use").
        Refusal::Conflict
    } else {
        Refusal::Other
    }
}

fn io_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, message: &str) -> Option<Refusal> {
        let err = BollardError::DockerResponseServerError { status_code: status, message: message.into() };
        classify(err, &Endpoint::Unix("/run/docker.sock".into())).refusal()
    }

    #[test]
    fn engine_answers_are_classified_by_kind() {
        assert_eq!(refused(404, "No such container: x"), Some(Refusal::NotFound));
        assert_eq!(refused(404, "No such image: berth/x:1"), Some(Refusal::NoSuchImage));
        assert_eq!(
            refused(409, "Conflict. The container name \"/x\" is already in use"),
            Some(Refusal::Conflict)
        );
        assert_eq!(
            refused(500, "could not select device driver \"\" with capabilities: [[gpu]]"),
            Some(Refusal::DeviceDriverMissing)
        );
        assert_eq!(
            refused(
                500,
                "driver failed programming external connectivity: Bind for 0.0.0.0:8888 failed: port is already allocated"
            ),
            Some(Refusal::PortTaken)
        );
        assert_eq!(
            refused(400, "invalid mount config: bind source path does not exist: /x"),
            Some(Refusal::BindSourceMissing)
        );
        assert_eq!(
            refused(
                500,
                "creating container storage: the container name \"x\" is already in use by 40b6. You have to \
                 remove that container to be able to reuse that name: that name is already in use"
            ),
            Some(Refusal::Conflict),
            "Podman's words for a taken name"
        );
        assert_eq!(refused(500, "something else"), Some(Refusal::Other));
    }

    #[test]
    fn a_missing_socket_means_no_engine() {
        let e = classify(
            BollardError::SocketNotFoundError("/nope.sock".into()),
            &Endpoint::Unix("/nope.sock".into()),
        );
        assert_eq!(e.code(), Code::NoEngine);
        assert_eq!(e.to_string(), "no container engine at unix:///nope.sock (the socket does not exist)");
    }
}
