// The system metric keys the tests expect, written out from MLflow's names (not read from src/).

/** MLflow's system metric keys without GPUs (mlflow/system_metrics: cpu, disk and network monitors). */
export const MLFLOW_SYSTEM_KEYS = [
  'system/cpu_utilization_percentage',
  'system/system_memory_usage_megabytes',
  'system/system_memory_usage_percentage',
  'system/disk_usage_percentage',
  'system/disk_usage_megabytes',
  'system/disk_available_megabytes',
  'system/network_receive_megabytes',
  'system/network_transmit_megabytes',
];

/** The training process's own keys (MLflow's process names, and runtel's heap and event loop). */
export const PROCESS_KEYS = ['system/process_cpu_percentage', 'system/process_memory_rss_megabytes', 'system/process_heap_used_megabytes', 'system/event_loop_delay_p99_milliseconds'];
