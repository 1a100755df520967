//! The per-aggregate version each projection has applied.

use sqlx::PgConnection;
use std::collections::HashMap;

/// Locks the version rows of `aggregate_ids` for `projection` (creating
/// missing ones at 0) and returns each one's version, in one round trip.
/// Rows are locked in id order, so concurrent workers cannot deadlock.
pub async fn lock_versions(
    tx: &mut PgConnection,
    projection: &str,
    aggregate_ids: &[&str],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let mut ids: Vec<&str> = aggregate_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let rows = sqlx::query!(
        "insert into projection_versions (projection, aggregate_id, version)
         select $1, id, 0 from unnest($2::text[]) as id order by id
         on conflict (projection, aggregate_id)
           do update set version = projection_versions.version
         returning aggregate_id, version",
        projection,
        &ids as &[&str],
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.aggregate_id, row.version))
        .collect())
}

/// Records the versions a transaction brought its aggregates to: rows
/// [`lock_versions`] created and locked for the aggregates a projection
/// follows, and the versions of those it only reacts to, which may come in
/// any order, so each row keeps the highest version it was given (for a
/// followed aggregate the new version is always the higher). An upsert,
/// not `update … from unnest(…)`: a join's plan, cached while the table was
/// small, stayed a sequential scan as the table grew (measured: 5 ms a
/// batch at 10k rows, a third of all Postgres time per command); an upsert
/// has only the primary key to go through.
pub async fn store_versions(
    tx: &mut PgConnection,
    projection: &str,
    versions: &HashMap<String, i64>,
) -> Result<(), sqlx::Error> {
    let mut rows: Vec<(&str, i64)> = versions.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    // In id order, like every writer of these rows, so none deadlock.
    rows.sort_unstable();
    let (ids, values): (Vec<&str>, Vec<i64>) = rows.into_iter().unzip();
    sqlx::query!(
        "insert into projection_versions (projection, aggregate_id, version)
         select $1, v.aggregate_id, v.version
         from unnest($2::text[], $3::bigint[]) as v(aggregate_id, version)
         order by v.aggregate_id
         on conflict (projection, aggregate_id) do update
           set version = greatest(projection_versions.version, excluded.version)",
        projection,
        &ids as &[&str],
        &values,
    )
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
    let version = sqlx::query_scalar!(
        "select version from projection_versions where projection = $1 and aggregate_id = $2",
        projection,
        aggregate_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(version.unwrap_or(0))
}

/// How many of `projections` reflect less than the version paired with
/// each for `aggregate_id` (one that never saw the aggregate counts as
/// behind).
pub async fn projections_behind(
    db: impl sqlx::PgExecutor<'_>,
    projections: &[(&str, i64)],
    aggregate_id: &str,
) -> Result<i64, sqlx::Error> {
    let (names, versions): (Vec<&str>, Vec<i64>) = projections.iter().copied().unzip();
    sqlx::query_scalar!(
        r#"select count(*) as "behind!" from unnest($1::text[], $2::bigint[]) as p(projection, version)
           where not exists (
             select 1 from projection_versions v
             where v.projection = p.projection and v.aggregate_id = $3 and v.version >= p.version)"#,
        &names as &[&str],
        &versions,
        aggregate_id,
    )
    .fetch_one(db)
    .await
}
