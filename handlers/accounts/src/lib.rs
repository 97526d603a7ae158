//! The `accounts` family: guest-set-user-password (chpasswd fed on stdin,
//! never on a command line) and guest-ssh-*-authorized-keys, as qemu-ga 7.2
//! (qga/commands-posix.c, commands-posix-ssh.c).

pub mod logic;

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        world: "accounts-family",
        path: "../../wit",
    });

    use super::logic::{self, Account, Accounts, Outcome};
    use exports::qga::agent::accounts::{Guest, GuestAuthorizedKeys};
    use qga::agent::authorized_keys as keys;
    use qga::agent::helper::{self, ExitStatus, SpawnError};
    use qga::agent::types::QgaError;

    struct Handler;
    struct Host;

    impl Accounts for Host {
        fn find_chpasswd(&mut self) -> bool {
            helper::find_program("chpasswd").is_some()
        }
        fn chpasswd(&mut self, crypted: bool, input: &[u8]) -> Outcome {
            let args = if crypted { vec!["-e".to_owned()] } else { vec![] };
            match helper::run("chpasswd", &args, Some(input)) {
                Ok(ExitStatus::Exited(code)) => Outcome::Exited(code),
                Ok(ExitStatus::Signaled(_)) => Outcome::Signaled,
                Err(SpawnError::NotFound) => Outcome::Exited(1),
                Err(SpawnError::InputFailed(e)) => Outcome::InputFailed(e),
                Err(SpawnError::Other(e)) => Outcome::SpawnFailed(e),
            }
        }
        fn lookup(&mut self, user: &str) -> Result<Account, String> {
            keys::lookup(user).map(|a| Account { home: a.home })
        }
        fn read(&mut self, user: &str) -> Result<Vec<u8>, String> {
            keys::read(user)
        }
        fn keys_exist(&mut self, user: &str) -> bool {
            keys::keys_exist(user)
        }
        fn ssh_dir_exists(&mut self, user: &str) -> bool {
            keys::ssh_dir_exists(user)
        }
        fn make_ssh_dir(&mut self, user: &str) -> Result<(), String> {
            keys::make_ssh_dir(user)
        }
        fn write(&mut self, user: &str, contents: &[u8]) -> Result<(), String> {
            keys::write(user, contents)
        }
    }

    fn err(desc: String) -> QgaError {
        QgaError { desc }
    }

    impl Guest for Handler {
        fn guest_set_user_password(username: String, password: String, crypted: bool) -> Result<(), QgaError> {
            logic::set_user_password(&mut Host, &username, &password, crypted).map_err(err)
        }
        fn guest_ssh_get_authorized_keys(username: String) -> Result<GuestAuthorizedKeys, QgaError> {
            let keys = logic::get_keys(&mut Host, &username).map_err(err)?;
            Ok(GuestAuthorizedKeys { keys })
        }
        fn guest_ssh_add_authorized_keys(
            username: String,
            keys: Vec<String>,
            reset: Option<bool>,
        ) -> Result<(), QgaError> {
            logic::add_keys(&mut Host, &username, &keys, reset.unwrap_or(false)).map_err(err)
        }
        fn guest_ssh_remove_authorized_keys(username: String, keys: Vec<String>) -> Result<(), QgaError> {
            logic::remove_keys(&mut Host, &username, &keys).map_err(err)
        }
    }

    export!(Handler);
}
