"""When assets refresh on their own: Dagster's declarative automation, as its docs recommend
over schedules and sensors for asset-centric work (guides/automate/declarative-automation).

The assets of curation, analytics, training and evaluation carry one of these conditions;
`automation_sensor` evaluates them (in the daemon, which `dagster dev` starts) once it is turned on
under Automation. aigc_samples (a paid API) and the release's assets carry none: they run when
someone asks (release_candidates also in the shard_pipeline job). New shards are registered and
run by `new_shards_sensor` (curation/sensors.py); these conditions then refresh what an
upstream change reaches:
- an input whose content changed (a new data version: raw_shards' is a hash of the shard's files,
  every other asset's the hash of the file it published (FlipStorage.publish), a shard's the same
  whether it ran alone or in a range (per_shard); so re-running unchanged shards requests nothing,
  whereas AutomationCondition.eager() would react to any new materialization);
- a new code_version on the asset itself (bump it when a change alters the output);
- a partition that became missing, for assets with inputs (raw_shards' new partitions are the
  sensor's).
They wait while an input is missing or being computed, and never request what is running. An
input partition whose last run failed for good does not count as missing: one bad shard does not
hold back the unpartitioned stages, which use the shards that exist.
"""

from dagster import AssetSelection, AutomationCondition, AutomationConditionSensorDefinition, DefaultSensorStatus

# data_version_changed() alone reports every changed partition of a dependency, whatever the
# partition mapping: the `&` keeps those the mapping names (an And starts from the partitions it is
# asked about), so the learned stages, which map to the learning sample (shards.LEARNING_SAMPLE),
# ignore a new shard outside it. A changed partition is never missing: for identity and
# all-partition mappings nothing else changes.
_input_changed = AutomationCondition.any_deps_match(
    AutomationCondition.data_version_changed() & ~AutomationCondition.missing()
).with_label("any_input_data_changed")
_input_missing = AutomationCondition.any_deps_match(
    AutomationCondition.missing() & ~AutomationCondition.will_be_requested() & ~AutomationCondition.execution_failed()
).with_label("any_input_missing_not_failed")
_runnable = ~_input_missing & ~AutomationCondition.any_deps_in_progress() & ~AutomationCondition.in_progress()

# Assets with inputs: refresh when an input's content or the asset's code changed, or a
# partition appeared.
REFRESH_ON_CHANGE = (
    (AutomationCondition.newly_missing() | _input_changed | AutomationCondition.code_version_changed()).since_last_handled()
    & _runnable
).with_label("refresh_on_change")

# Assets without asset inputs: raw_shards reads the shard files, which new_shards_sensor watches,
# celeba_caption_pairs the CelebA files; only a new code version re-reads them.
REFRESH_ON_CODE_CHANGE = (
    AutomationCondition.code_version_changed().since_last_handled() & ~AutomationCondition.in_progress()
).with_label("refresh_on_code_change")

automation_sensor = AutomationConditionSensorDefinition(
    "automation_sensor",
    target=AssetSelection.all(),
    # Off until turned on: a refresh can retrain the classifier and call the language model.
    default_status=DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
)
