//! Mapping driver errors to `StoreError` without leaking SQL.

use gateway_budget::StoreError;

/// Maps a SQLite error. Statement text is never included.
pub(crate) fn from_sqlite(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &error {
        rusqlite::Error::SqliteFailure(failure, message) => match failure.code {
            ErrorCode::ConstraintViolation => StoreError::Conflict(
                message
                    .clone()
                    .unwrap_or_else(|| "constraint violated".to_owned()),
            ),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen => {
                StoreError::Unavailable(format!("{:?}", failure.code))
            }
            code => StoreError::Database(message.clone().unwrap_or_else(|| format!("{code:?}"))),
        },
        rusqlite::Error::SqlInputError { msg, .. } => StoreError::Database(msg.clone()),
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(error.to_string()),
        _ => StoreError::Database(error.to_string()),
    }
}

/// Maps a PostgreSQL error: a unique violation is a conflict, a closed or
/// broken connection is unavailability; the server's message (never the
/// statement) otherwise.
pub(crate) fn from_postgres(error: tokio_postgres::Error) -> StoreError {
    if let Some(database_error) = error.as_db_error() {
        if *database_error.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
            return StoreError::Conflict(
                database_error
                    .constraint()
                    .unwrap_or("unique constraint")
                    .to_owned(),
            );
        }
        return StoreError::Database(database_error.message().to_owned());
    }
    StoreError::Unavailable(error.to_string())
}

/// Maps a pool error (cannot get a connection).
pub(crate) fn from_pool(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(backend) => from_postgres(backend),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Maps a JSON error on a stored record.
pub(crate) fn from_json(error: serde_json::Error) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

/// Maps a blocking task that panicked or was cancelled.
pub(crate) fn from_join(error: tokio::task::JoinError) -> StoreError {
    StoreError::Database(format!("database task failed: {error}"))
}
