//! Channels to the host, one file per kind. Each hands byte streams to
//! [`stream::serve`], every stream with a parser of its own.

pub mod activation;
pub mod fd;
pub mod listen;
pub mod serial;
pub mod stream;
pub(crate) mod sys;
pub mod unix;
pub mod vsock;

use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, Method};
use crate::dispatch::Dispatcher;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Activation(#[from] activation::ActivationError),
    #[error("failed to listen on {path}: {source}")]
    Bind { path: String, source: std::io::Error },
    #[error(transparent)]
    Vsock(#[from] vsock::VsockError),
    #[error(transparent)]
    Serial(#[from] serial::SerialError),
    #[error("accepting clients failed: {0}")]
    Accept(std::io::Error),
}

/// Serve the configured channel until a fatal error. Dropping the future
/// stops it and removes the unix socket file.
pub async fn run(config: &Config, dispatcher: Arc<Dispatcher>) -> Result<(), TransportError> {
    if let Some(fd) = activation::inherited_socket()? {
        tracing::info!("using the socket passed by systemd");
        return listen::serve(activation::listener(fd)?, dispatcher)
            .await
            .map_err(TransportError::Accept);
    }
    match config.method {
        Method::UnixListen => {
            let (listener, _socket_file) =
                unix::bind(Path::new(&config.path)).map_err(|source| TransportError::Bind {
                    path: config.path.clone(),
                    source,
                })?;
            tracing::info!("listening on {}", config.path);
            listen::serve(listen::Listener::Unix(listener), dispatcher)
                .await
                .map_err(TransportError::Accept)
        }
        Method::VsockListen => {
            let listener = vsock::bind_listener(&config.path)?;
            tracing::info!("listening on vsock {}", config.path);
            listen::serve(listen::Listener::Vsock(listener), dispatcher)
                .await
                .map_err(TransportError::Accept)
        }
        Method::VirtioSerial | Method::IsaSerial => {
            Ok(serial::serve(config.method, &config.path, config.retry_path, dispatcher).await?)
        }
    }
}
