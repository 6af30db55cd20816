"""Complete configurations of the ``files`` experiment, one per ``data.source``: shown by
``deepsphere-pyg train --help`` and in the README (a test keeps the two the same)."""

#: ``data.source`` -> a YAML file for ``deepsphere-pyg train --config``.
FILE_EXAMPLES: dict[str, str] = {
    "grid": """\
experiment: files
data:
  source: grid
  path: era5_t2m_*.nc           # a file, a glob or a list; joined along time
  inputs: [t2m, msl]
  target: t2m
  lead: 1                        # one time step ahead
  history: 2                     # from the last two steps
  region: [-30, 60, 20, 75]      # lon_min, lon_max, lat_min, lat_max (optional)
  mask_variable: null            # a variable whose nonzero cells are the nodes (land-sea)
  splits:                        # time ranges, stop excluded (or fractions: train: 0.8)
    train: [null, "2019-01-01"]
    val: ["2019-01-01", "2020-01-01"]
    test: ["2020-01-01", null]
graph: {levels: 3, k: 8}
train: {epochs: 20}
""",
    "stations": """\
experiment: files
data:
  source: stations
  path: stations.parquet
  columns: {station: wmo_id, lon: longitude, lat: latitude, time: valid_time}
  inputs: [pressure, humidity]
  target: t2m
  duplicates: merge              # stations at the same position: one node
graph: {levels: 2, k: 8}
""",
    "healpix": """\
experiment: files
data:
  source: healpix
  path: maps/*.fits
  inputs: [TEMPERATURE]         # FITS column names (or field indices "0", "1", ...)
  labels: labels.csv            # a `label` column, one row per map, in file order
  mask: footprint.fits           # the observed pixels (default: the maps' valid pixels)
  splits: {train: 0.8, val: 0.1, test: 0.1}
graph: {levels: 4}
""",
}
