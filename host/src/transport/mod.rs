//! Channels to the host, one file per kind. Each hands byte streams to
//! [`stream::serve`] with a parser of their own.

pub mod stream;
pub mod unix;
