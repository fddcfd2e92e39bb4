"""Jobs submitted to the Manager itself (stand-alone mode), as pure functions and values.

Nothing here does HTTP or touches a database: job types compile settings into task specs
(`compiled.TaskSpec`), `settings` validates submitted settings against a type's declared
ones, `status` derives a job's status from its tasks', `twoway` maps paths between platforms.
"""
