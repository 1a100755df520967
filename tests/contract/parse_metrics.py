"""Parses the Prometheus text format on stdin with the official Python
client's parser (prometheus_client) and prints the samples as JSON lines:
{"name", "labels", "value"}. Exits non-zero if the text does not parse.
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value}))
