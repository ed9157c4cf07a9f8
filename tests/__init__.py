"""The test suite and its kit: real servers on loopback (tests.servers), config, contact and
message builders (tests.kit), the adversarial mailbox (tests.mailgen), the fault proxy."""
