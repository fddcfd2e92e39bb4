"""Configuration: defaults, both duration spellings, and one clear line per mistake."""

from twisted.trial.unittest import TestCase

from flamenco.config import ConfigError, ListenAddress, load_config, parse_config

SERVER = {"flamenco": "https://cloud.example/", "manager_id": "5A1F0C3E9F1B2C0D4E5F6A70",
          "manager_secret": "token"}


class ConfigTests(TestCase):
    def test_defaults_are_the_protocols(self):
        config, warnings = parse_config({})
        self.assertEqual(warnings, [])
        self.assertEqual(
            (config.download_task_sleep_seconds, config.download_task_recheck_throttle_seconds,
             config.task_update_push_max_interval_seconds, config.task_update_push_max_count,
             config.cancel_task_fetch_max_interval_seconds,
             config.active_task_timeout_interval_seconds, config.task_timeout_grace_seconds,
             config.task_timeout_check_interval_seconds),
            (300, 10, 30, 10, 10, 60, 300, 5),
        )
        self.assertEqual(config.store_location, ("sqlite", "flamenco-manager.sqlite"))
        self.assertFalse(config.has_upstream)

    def test_database_sync_is_full_unless_set_to_normal(self):
        self.assertEqual(parse_config({})[0].database_sync, "full")
        self.assertEqual(parse_config({"database_sync": "normal"})[0].database_sync, "normal")
        with self.assertRaises(ConfigError) as caught:
            parse_config({"database_sync": "off"})
        self.assertEqual(str(caught.exception), "database_sync: expected full or normal, not 'off'")

    def test_listen_forms(self):
        self.assertEqual(ListenAddress.parse("[::0]:8083"), ListenAddress("::0", 8083))
        self.assertEqual(ListenAddress.parse(":8083"), ListenAddress("::", 8083))
        self.assertEqual(ListenAddress.parse("10.0.0.5:80"), ListenAddress("10.0.0.5", 80))
        self.assertEqual(ListenAddress.parse("[::1]:8083").interface, r"\:\:1")

    def test_2x_duration_spellings_are_accepted(self):
        config, _ = parse_config({"download_task_sleep": "5m",
                                  "active_task_timeout_interval": "1h30m",
                                  "task_update_push_max_interval_seconds": "30s"})
        self.assertEqual(config.download_task_sleep_seconds, 300)
        self.assertEqual(config.active_task_timeout_interval_seconds, 5400)
        self.assertEqual(config.task_update_push_max_interval_seconds, 30)
        self.assertEqual(parse_config({})[0].database_startup_timeout_seconds, 30)
        config, _ = parse_config({"database_startup_timeout": "1s"})
        self.assertEqual(config.database_startup_timeout_seconds, 1)

    def test_server_settings_are_normalised(self):
        config, _ = parse_config(dict(SERVER, own_url="http://10.0.0.5:8083/",
                                      tlskey="k.pem", tlscert="c.pem"))
        self.assertEqual(config.manager_id, "5a1f0c3e9f1b2c0d4e5f6a70")
        self.assertEqual(config.manager_url, "https://10.0.0.5:8083/")
        self.assertTrue(config.has_upstream)

    def test_registration_mode_follows_the_secret_when_not_given(self):
        modes = [parse_config(raw)[0].registration_mode for raw in (
            {}, {"worker_registration_secret": "k"}, {"worker_registration": "approve"},
            {"worker_registration": "approve", "worker_registration_secret": "k"},
            {"worker_registration": "secret", "worker_registration_secret": "k"})]
        self.assertEqual(modes, ["open", "secret", "approve", "approve", "secret"])
        config, _ = parse_config({"worker_auth_failure_window_seconds": "2m"})
        self.assertEqual(config.worker_auth_failure_window_seconds, 120)

    def test_unknown_keys_are_warnings(self):
        _, warnings = parse_config({"ssdp_discovery": True})
        self.assertEqual(warnings, ["unknown configuration key 'ssdp_discovery' ignored"])

    def test_every_mistake_is_one_line_naming_the_key(self):
        cases = [
            ({"task_update_push_max_count": 0}, "task_update_push_max_count"),
            ({"download_task_sleep_seconds": -5}, "download_task_sleep_seconds"),
            ({"active_task_timeout_interval_seconds": "soon"},
             "active_task_timeout_interval_seconds"),
            ({"task_update_push_max_count": 2.5}, "task_update_push_max_count"),
            ({"listen": "8083"}, "listen"),
            ({"listen": ":99999"}, "listen"),
            ({"flamenco": "ftp://x/"}, "flamenco"),
            ({"flamenco": "https://x/", "manager_secret": "t", "manager_id": "nope"}, "manager_id"),
            ({"flamenco": "https://x/", "manager_id": SERVER["manager_id"]}, "manager_secret"),
            ({"database_url": "postgres://x/y"}, "database_url"),
            ({"database_url": "mongodb://db.example:27017"}, "database_url"),
            ({"tlskey": "k.pem"}, "tlskey"),
            ({"variables": {"blender": {"amiga": "x"}}}, "variables.blender"),
            ({"variables": ["blender"]}, "variables"),
            ({"own_url": 5}, "own_url"),
            ({"worker_registration": "closed"}, "worker_registration"),
            ({"worker_registration": "secret"}, "worker_registration_secret"),
            ({"worker_registration": "open", "worker_registration_secret": "k"},
             "worker_registration"),
            ({"worker_secret_bcrypt_cost": 3}, "worker_secret_bcrypt_cost"),
            ({"worker_secret_bcrypt_cost": 32}, "worker_secret_bcrypt_cost"),
            ({"worker_auth_failure_limit": 0}, "worker_auth_failure_limit"),
            ({"worker_auth_failure_window_seconds": "soon"}, "worker_auth_failure_window_seconds"),
            ({"worker_secret_hashing_threads": 0}, "worker_secret_hashing_threads"),
            ({"database_startup_timeout_seconds": 0}, "database_startup_timeout_seconds"),
        ]
        for raw, key in cases:
            with self.assertRaises(ConfigError, msg=raw) as caught:
                parse_config(raw)
            message = str(caught.exception)
            self.assertIn(key, message)
            self.assertNotIn("\n", message)

    def test_file_errors(self):
        with self.assertRaises(ConfigError) as caught:
            load_config(self.mktemp())
        self.assertIn("cannot read configuration file", str(caught.exception))
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("listen: [unclosed\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(path)
        self.assertIn("not valid YAML", str(caught.exception))
        with open(path, "w") as f:
            f.write("- a\n- b\n")
        with self.assertRaises(ConfigError):
            load_config(path)


class FarmOperationsConfigTests(TestCase):
    def test_farm_defaults(self):
        config, warnings = parse_config({})
        self.assertEqual(warnings, [])
        self.assertEqual(
            (config.task_fail_after_softfail_count, config.blocklist_threshold,
             config.blocklist_expiry, config.active_worker_timeout_interval_seconds,
             config.worker_cleanup_max_age, config.worker_cleanup_status,
             config.task_cleanup_max_age, config.task_logs_path, config.sick_worker_jobs,
             config.sick_worker_window, config.server_generation),
            (3, 3, 7 * 86400, 60, 0, ("offline",), 336 * 3600, "task-logs", 3, 3600, "2021"),
        )
        self.assertTrue(config.soft_fail)
        self.assertTrue(config.send_log_tail)

    def test_2x_spellings_and_durations(self):
        config, _ = parse_config({
            "blacklist_threshold": 5, "blocklist_expiry": "2d", "worker_cleanup_max_age": "720h",
            "worker_cleanup_status": ["offline", "timeout"],
            "active_worker_timeout_interval": "15m",
            "active_task_timeout_interval": "1h", "task_cleanup_max_age": "0s",
        })
        self.assertEqual(
            (config.blocklist_threshold, config.blocklist_expiry, config.worker_cleanup_max_age,
             config.worker_cleanup_status, config.active_worker_timeout_interval_seconds,
             config.task_cleanup_max_age),
            (5, 2 * 86400, 720 * 3600, ("offline", "timeout"), 900, 0),
        )

    def test_a_2017_server_turns_soft_fail_and_log_tail_off(self):
        config, _ = parse_config({"server_generation": 2017})
        self.assertEqual((config.soft_fail, config.send_log_tail), (False, False))
        config, _ = parse_config({"server_generation": "2017", "task_soft_fail": True})
        self.assertTrue(config.soft_fail)
        config, _ = parse_config({"task_soft_fail": False, "task_logs_path": ""})
        self.assertEqual((config.soft_fail, config.send_log_tail), (False, False))

    def test_farm_mistakes_name_the_key(self):
        for raw, key in [({"server_generation": "2019"}, "server_generation"),
                         ({"task_soft_fail": "yes"}, "task_soft_fail"),
                         ({"blacklist_threshold": -1}, "blocklist_threshold"),
                         ({"task_fail_after_softfail_count": 0}, "task_fail_after_softfail_count"),
                         ({"worker_cleanup_status": [1]}, "worker_cleanup_status"),
                         ({"blocklist_expiry": "soon"}, "blocklist_expiry")]:
            with self.assertRaises(ConfigError) as caught:
                parse_config(raw)
            self.assertIn(key, str(caught.exception))

    def test_worker_timeout_longer_than_task_timeout_is_warned_about(self):
        _, warnings = parse_config({"active_worker_timeout_interval": "15m",
                                    "active_task_timeout_interval": "1m"})
        self.assertEqual(len(warnings), 1)
        self.assertIn("active_worker_timeout_interval", warnings[0])
