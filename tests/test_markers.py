"""The marker discipline: every lane test (browser, arm, sshd, compile, training, android) is also slow, so that
`pytest -m "not slow"` leaves out everything that needs a lane's machinery. Checked on the tests this run collected."""
from tests.conftest import LANES


def test_every_lane_test_is_also_slow(request):
    lane_only = [item.nodeid for item in request.session.items
                 if any(item.get_closest_marker(m) for m in LANES) and not item.get_closest_marker("slow")]
    assert not lane_only, f"lane tests without @pytest.mark.slow: {lane_only}"


def test_lanes_are_registered(pytestconfig):
    registered = {line.split(":")[0] for line in pytestconfig.getini("markers")}
    assert set(LANES) | {"slow"} <= registered
