//! The organisation's users and system accounts, the principals that
//! audit-log records name by id (`principal_id`). Tests seed them; the
//! identity API (`api/identity.rs`) lists and shows them as the identity
//! spec's `User` and `SystemAccount`, and organisation events name them
//! once any is seeded (`Generator::set_principals`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::portal::parse_given_id;
use crate::time::{self, Millis};

/// The longest `email`, `full_name` and `preferred_name` the spec allows.
const MAX_TEXT: usize = 250;

/// A user to add: [`crate::Sim::add_user_with`] or `POST /_sim/users`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Unique (compared without case).
    pub email: String,
    pub full_name: String,
    /// Defaults to the first word of `full_name`.
    #[serde(default)]
    pub preferred_name: Option<String>,
    /// Defaults to true (the email address is verified).
    #[serde(default)]
    pub active: Option<bool>,
    /// A fixed id (a UUID) instead of a generated one.
    #[serde(default)]
    pub id: Option<String>,
}

/// A system account to add: [`crate::Sim::add_system_account_with`] or
/// `POST /_sim/system-accounts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSystemAccount {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub konnect_managed: bool,
    /// A fixed id (a UUID) instead of a generated one.
    #[serde(default)]
    pub id: Option<String>,
}

/// A user: exactly the identity spec's `User` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    pub id: String,
    pub email: String,
    pub full_name: String,
    pub preferred_name: String,
    pub active: bool,
    pub inferred_region: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A system account: exactly the identity spec's `SystemAccount` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemAccountState {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
    pub konnect_managed: bool,
}

/// Checks `new` and makes the user (`id` when `new` names none).
pub(crate) fn new_user(new: &NewUser, id: Uuid, now: Millis) -> Result<UserState, String> {
    let id = parse_given_id(&new.id)?.unwrap_or(id);
    let email = new.email.trim();
    if !email.contains('@') || email.chars().count() > MAX_TEXT {
        return Err(format!(
            "a user email must be an address of at most {MAX_TEXT} characters, not {:?}",
            new.email
        ));
    }
    if new.full_name.trim().is_empty() || new.full_name.chars().count() > MAX_TEXT {
        return Err(format!(
            "a user full_name must have 1 to {MAX_TEXT} characters, not {:?}",
            new.full_name
        ));
    }
    let preferred_name = new.preferred_name.clone().unwrap_or_else(|| {
        new.full_name
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    });
    if preferred_name.chars().count() > MAX_TEXT {
        return Err(format!(
            "a preferred_name must have at most {MAX_TEXT} characters"
        ));
    }
    let at = time::format_millis(now);
    Ok(UserState {
        id: id.to_string(),
        email: email.to_string(),
        full_name: new.full_name.clone(),
        preferred_name,
        active: new.active.unwrap_or(true),
        inferred_region: "us".to_string(),
        created_at: at.clone(),
        updated_at: at,
    })
}

/// Checks `new` and makes the system account (`id` when `new` names none).
pub(crate) fn new_system_account(
    new: &NewSystemAccount,
    id: Uuid,
    now: Millis,
) -> Result<SystemAccountState, String> {
    let id = parse_given_id(&new.id)?.unwrap_or(id);
    if new.name.trim().is_empty() {
        return Err("a system account needs a name".to_string());
    }
    let at = time::format_millis(now);
    Ok(SystemAccountState {
        id: id.to_string(),
        name: new.name.clone(),
        description: new.description.clone().unwrap_or_default(),
        created_at: at.clone(),
        updated_at: at,
        konnect_managed: new.konnect_managed,
    })
}
