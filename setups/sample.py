description = 'sample environment: temperature and sample stage'
group = 'lowlevel'

from nicos_scriptserver.instance.config import Instance

instance = Instance.from_env()

# Guests may watch, not move (NICOS checks this on every start()).
user_only = {'level': 'user'}

devices = dict(
    T_sample = device('nicos_scriptserver.daemon.demodevices.DemoMotor',
        requires = user_only,
        description = 'sample temperature; ramps linearly at `speed` K/s',
        unit = 'K',
        abslimits = (1.5, 350),
        curvalue = 295,
        fmtstr = '%.2f',
        speed = 2 * instance.timescale,
    ),
    sample_x = device('nicos_scriptserver.daemon.demodevices.DemoMotor',
        requires = user_only,
        description = 'sample stage translation across the beam',
        unit = 'mm',
        abslimits = (-50, 50),
        fmtstr = '%.2f',
        speed = 5 * instance.timescale,
    ),
    sample_theta = device('nicos_scriptserver.daemon.demodevices.DemoMotor',
        requires = user_only,
        description = 'sample rotation about the vertical axis',
        unit = 'deg',
        abslimits = (-180, 180),
        fmtstr = '%.2f',
        speed = 10 * instance.timescale,
    ),
)
