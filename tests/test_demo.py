"""``slimrec demo`` compares what issue 12 asks for beside the full table."""

from slimrec.demo import demo_configs


def test_demo_shows_the_baselines_and_the_graph_family(tmp_path):
    configs = demo_configs(tmp_path, progress=False)
    methods = [config.embedding for config in configs]
    assert methods[0] == "full"
    assert {"hash", "quantized", "graphhash", "graph", "graph_popularity"} <= set(methods)
    assert all(config.threads == 1 for config in configs)
