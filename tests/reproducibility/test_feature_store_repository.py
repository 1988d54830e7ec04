"""The feature repository file and FeatureService (Feature Store, 26): definitions shared by specs and serving."""

from __future__ import annotations

import datetime as dt
import textwrap

import pandas as pd
import pytest

from mlpatterns.reproducibility.feature_store import (
    Entity,
    FeatureView,
    materialize,
    open_online_store,
)
from mlpatterns.reproducibility.feature_store.feature_service import (
    FeatureService,
    FeatureServiceError,
)
from mlpatterns.reproducibility.feature_store.repository import (
    RepositoryError,
    load_repository,
    parse_duration,
)

GOOD = """\
version: 1
online_store: sqlite:///stores/online.db
entities:
  airport: {join_keys: [origin]}
  plane: {join_keys: tailnum}
feature_views:
  weather:
    entities: [airport]
    source: weather.parquet
    timestamp_field: time_hour
    ttl: 3h
    features: [temp, humid]
  planes:
    entities: [plane]
    source: /data/planes.csv
    timestamp_field: registered
    features: [seats, year]
"""


def _write(tmp_path, text):
    path = tmp_path / "features.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_file_resolves_sources_and_the_online_store_against_its_folder(tmp_path):
    repository = load_repository(_write(tmp_path, GOOD))
    weather = repository.view("weather")
    assert weather.source == tmp_path.resolve() / "weather.parquet"
    assert str(repository.view("planes").source) == "/data/planes.csv"
    assert weather.ttl == dt.timedelta(hours=3) and repository.view("planes").ttl is None
    assert repository.online_store == f"sqlite:///{tmp_path.resolve() / 'stores/online.db'}"
    assert len(repository.sha256) == 64
    assert [(v.name, v.features) for v in repository.select(["planes:seats", "weather"])] == [
        ("planes", ("seats",)), ("weather", ("temp", "humid"))]


@pytest.mark.parametrize(("change", "message"), [
    (("version: 1", "version: 2"), "version: expected 1"),
    (("    ttl: 3h", "    ttl: three hours"), "feature_views.weather.ttl: expected a duration"),
    (("    ttl: 3h", "    ttl: -5"), "feature_views.weather.ttl: expected a positive duration"),
    (("entities: [airport]", "entities: [runway]"), "feature_views.weather.entities: no entity 'runway'"),
    (("    source: weather.parquet", "    source: weather.json"), "feature_views.weather: FeatureView 'weather': "
                                                                  "source must be a .parquet or .csv"),
    (("    timestamp_field: time_hour\n", "    timestamps: time_hour\n"), "feature_views.weather: unknown field "
                                                                         "'timestamps'"),
    (("features: [temp, humid]", "features: [temp, temp]"), "names ['temp'] more than once"),
    (("online_store: sqlite:///stores/online.db", "online_store: online.db"), "online_store: expected a URL"),
    (("  airport: {join_keys: [origin]}", "  airport: {keys: [origin]}"), "entities.airport: unknown field 'keys'"),
])
def test_each_mistake_names_the_file_and_the_field(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(RepositoryError) as error:
        load_repository(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_bad_yaml_a_missing_file_and_bad_references(tmp_path):
    with pytest.raises(RepositoryError, match="no such file"):
        load_repository(tmp_path / "nowhere.yaml")
    with pytest.raises(RepositoryError, match="not valid YAML"):
        load_repository(_write(tmp_path, "version: [1"))
    repository = load_repository(_write(tmp_path, GOOD))
    with pytest.raises(RepositoryError, match="no feature view 'rain'"):
        repository.select(["rain"])
    with pytest.raises(RepositoryError, match=r"features\[1\]: weather:temp is referenced twice"):
        repository.select(["weather", "weather:temp"])
    with pytest.raises(RepositoryError, match="expected 'view' or 'view:feature'"):
        repository.select(["weather:temp:x"])
    with pytest.raises(RepositoryError, match="non-empty list"):
        repository.select("weather")


def test_durations():
    assert parse_duration("90m", "ttl") == dt.timedelta(minutes=90)
    assert parse_duration(3600, "ttl") == dt.timedelta(hours=1)
    assert parse_duration("1.5 d", "ttl") == dt.timedelta(hours=36)
    assert parse_duration(None, "ttl") is None
    with pytest.raises(RepositoryError, match="ttl: expected a duration"):
        parse_duration(True, "ttl")


@pytest.fixture
def weather_service(tmp_path):
    pd.DataFrame({
        "origin": ["EWR", "EWR", "JFK"],
        "time_hour": pd.to_datetime(["2013-01-01 06:00", "2013-01-01 07:00", "2013-01-01 06:00"]),
        "temp": [39.0, 39.9, 41.0], "humid": [50.0, 55.0, 60.0],
    }).to_parquet(tmp_path / "weather.parquet", index=False)
    repository = load_repository(_write(tmp_path, GOOD))
    return FeatureService.from_repository(repository, ["weather:temp"], "scheduled")


def test_online_applies_the_ttl_at_each_rows_own_event_time(weather_service, tmp_path):
    with open_online_store(f"sqlite:///{tmp_path / 'online.db'}") as store:
        materialize(store, list(weather_service.views))
        rows = [{"origin": "JFK", "scheduled": "2013-01-01T08:59:00"},  # 2 h 59 min after: within 3 h
                {"origin": "JFK", "scheduled": "2013-01-01T09:00:01"},  # past the TTL
                {"origin": "EWR", "scheduled": "2013-01-01T07:00:00"},
                {"origin": "LGA", "scheduled": "2013-01-01T07:00:00Z"}]  # unknown key
        completed = weather_service.online(store, rows)
        with pytest.raises(FeatureServiceError, match="row 1: scheduled: the event time is missing"):
            weather_service.online(store, [rows[0], {"origin": "EWR", "scheduled": None}])
    assert [r["temp"] for r in completed] == [41.0, None, 39.9, None]
    assert "temp" not in rows[0]  # the caller's rows are not changed


def test_request_keys_take_the_training_datas_key_type(tmp_path):
    source = pd.DataFrame({"plane": [42, 7], "ts": pd.to_datetime(["2013-01-01 00:00"] * 2), "seats": [150, 20]})
    view = FeatureView("planes", [Entity("plane", ["plane"])], source, "ts", ["seats"])
    service = FeatureService((view,), "at").with_key_types(source)
    assert service.key_types == {"plane": "integer"}
    service = FeatureService.from_manifest(service.to_manifest())  # as a served bundle reads it
    with open_online_store(f"sqlite:///{tmp_path / 'online.db'}") as store:
        materialize(store, view)
        rows = [{"plane": "42", "at": "2013-02-01T00:00:00"}, {"plane": 7.0, "at": "2013-02-01T00:00:00"}]
        assert [r["seats"] for r in service.online(store, rows)] == [150, 20]
        with pytest.raises(FeatureServiceError, match="row 0: plane: expected a whole number"):
            service.online(store, [{"plane": "N42", "at": "2013-02-01T00:00:00"}])


def test_online_equals_historical_after_materializing_up_to_the_event_time(weather_service, tmp_path):
    at = dt.datetime(2013, 1, 1, 6, 30)
    frame = pd.DataFrame({"origin": ["EWR", "JFK", "LGA"], "scheduled": [at] * 3})
    offline = weather_service.historical(frame)["temp"].tolist()
    with open_online_store(f"sqlite:///{tmp_path / 'online.db'}") as store:
        materialize(store, list(weather_service.views), end=at + dt.timedelta(microseconds=1))
        online = [r["temp"] for r in weather_service.online(store, frame.to_dict("records"))]
    assert online[:2] == offline[:2] == [39.0, 41.0] and online[2] is None and pd.isna(offline[2])


def test_the_manifest_form_round_trips_and_bad_rows_are_named(weather_service):
    again = FeatureService.from_manifest(weather_service.to_manifest())
    assert again.to_manifest() == weather_service.to_manifest()
    assert FeatureService.from_manifest(weather_service.to_manifest(), online_store="sqlite:///x.db").online_store \
        == "sqlite:///x.db"
    with pytest.raises(FeatureServiceError, match="cannot be read"):
        FeatureService.from_manifest({"views": [{"name": "weather"}]})
    with pytest.raises(FeatureServiceError, match="lacks the column"):
        weather_service.historical(pd.DataFrame({"origin": ["EWR"]}))
    with pytest.raises(FeatureServiceError, match="already has the column"):
        weather_service.historical(pd.DataFrame({"origin": ["EWR"], "scheduled": [pd.Timestamp("2013-01-01")],
                                                 "temp": [1.0]}))


def test_embeddings_are_features_offline_and_online(tmp_path):
    from mlpatterns.reproducibility.feature_store import (
        Entity,
        FeatureView,
        get_historical_features,
    )

    source = pd.DataFrame({"user": ["a", "a", "b"],
                           "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01"]),
                           "embedding": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [-1.0, 0.0, 1e-300]]})
    view = FeatureView("users", [Entity("user", ["user"])], source, "ts", ["embedding"])
    rows = pd.DataFrame({"user": ["a", "b", "c"],
                         "event_timestamp": pd.to_datetime(["2024-01-01 12:00", "2024-01-03 00:00", "2024-01-03 00:00"])})
    offline = get_historical_features(rows, [view])["embedding"]
    assert [list(v) for v in offline[:2]] == [[0.1, 0.2, 0.3], [-1.0, 0.0, 1e-300]] and pd.isna(offline[2])
    with open_online_store(f"sqlite:///{tmp_path / 'online.db'}") as store:
        materialize(store, view, end=dt.datetime(2024, 1, 1, 12))
        assert [r["embedding"] for r in store.read(view, rows)] == [[0.1, 0.2, 0.3], [-1.0, 0.0, 1e-300], None]


def test_get_online_features_reads_several_views_for_a_batch(tmp_path):
    from mlpatterns.reproducibility.feature_store import Entity, FeatureView, get_online_features

    at = pd.Timestamp("2024-01-01")
    users = FeatureView("users", [Entity("user", ["user"])],
                        pd.DataFrame({"user": [1, 2], "ts": [at, at], "age": [30, 41]}), "ts", ["age"])
    items = FeatureView("items", [Entity("item", ["item"])],
                        pd.DataFrame({"item": ["x"], "ts": [at], "price": [9.5]}), "ts", ["price"],
                        ttl=dt.timedelta(days=1))
    rows = pd.DataFrame({"user": [2, 1, 3], "item": ["x", "y", "x"]})
    with open_online_store(f"sqlite:///{tmp_path / 'online.db'}") as store:
        materialize(store, [users, items])
        assert get_online_features(store, [users, items], rows) == [
            {"user": 2, "item": "x", "age": 41, "price": 9.5}, {"user": 1, "item": "y", "age": 30, "price": None},
            {"user": 3, "item": "x", "age": None, "price": 9.5}]
        late = get_online_features(store, [items], [{"item": "x"}], now=at + dt.timedelta(days=2))
        assert late == [{"item": "x", "price": None}]  # past the TTL at `now`
        clash = FeatureView("more", [Entity("user", ["user"])], users.source, "ts", ["age"])
        with pytest.raises(ValueError, match="the feature 'age' is in the views 'users' and 'more'"):
            get_online_features(store, [users, clash], rows)


def test_event_times_as_iso_text_or_dates_are_read_and_a_bad_one_is_named(weather_service):
    text = pd.DataFrame({"origin": ["EWR", "EWR"], "scheduled": ["2013-01-01T07:00:00", "2013-01-01T06:30:00"]})
    assert weather_service.historical(text)["temp"].tolist() == [39.9, 39.0]
    dates = pd.DataFrame({"origin": ["JFK"], "scheduled": [dt.date(2013, 1, 1)]})  # midnight: before 06:00
    assert pd.isna(weather_service.historical(dates)["temp"].iloc[0])
    with pytest.raises(FeatureServiceError, match=r"row 1 holds 'unknown' \(1 such row\(s\)\)"):
        weather_service.historical(pd.DataFrame({"origin": ["EWR", "EWR"],
                                                 "scheduled": ["2013-01-01T07:00:00", "unknown"]}))
