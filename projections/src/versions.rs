//! The per-aggregate version each projection has applied.

use sqlx::PgConnection;

/// Locks and returns the version `projection` reflects for `aggregate_id`
/// (0 if none), so concurrent workers apply an aggregate's events one at a time.
pub async fn lock_version(
    tx: &mut PgConnection,
    projection: &str,
    aggregate_id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "insert into projection_versions (projection, aggregate_id, version)
         values ($1, $2, 0) on conflict do nothing",
    )
    .bind(projection)
    .bind(aggregate_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query_scalar(
        "select version from projection_versions
         where projection = $1 and aggregate_id = $2 for update",
    )
    .bind(projection)
    .bind(aggregate_id)
    .fetch_one(&mut *tx)
    .await
}

pub async fn set_version(
    tx: &mut PgConnection,
    projection: &str,
    aggregate_id: &str,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update projection_versions set version = $3
         where projection = $1 and aggregate_id = $2",
    )
    .bind(projection)
    .bind(aggregate_id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The version a projection reflects for one aggregate, without locking.
pub async fn applied_version(
    db: impl sqlx::PgExecutor<'_>,
    projection: &str,
    aggregate_id: &str,
) -> Result<i64, sqlx::Error> {
    let version: Option<i64> = sqlx::query_scalar(
        "select version from projection_versions where projection = $1 and aggregate_id = $2",
    )
    .bind(projection)
    .bind(aggregate_id)
    .fetch_optional(db)
    .await?;
    Ok(version.unwrap_or(0))
}
