description = 'detector, monitor and beam current'
group = 'lowlevel'

from nicos_scriptserver.instance.config import Instance

instance = Instance.from_env()

# Guests may watch, not move (NICOS checks this on every start()).
user_only = {'level': 'user'}

devices = dict(
    timer = device('nicos_scriptserver.daemon.demodevices.DemoTimer',
        description = 'counting time',
        visibility = (),
    ),
    monitor = device('nicos_scriptserver.daemon.demodevices.DemoCounter',
        description = 'incident beam monitor',
        type = 'monitor',
        countrate = 5000,
        fmtstr = '%d',
        visibility = (),
    ),
    events = device('nicos_scriptserver.daemon.demodevices.DemoCounter',
        description = 'neutron events on the detector banks',
        type = 'counter',
        countrate = 20000,
        fmtstr = '%d',
        visibility = (),
    ),
    det = device('nicos_scriptserver.daemon.demodevices.DemoDetector',
        description = 'the main detector',
        timers = ['timer'],
        monitors = ['monitor'],
        counters = ['events'],
    ),
    frame_rate = device('nicos.devices.generic.ManualMove',
        requires = user_only,
        description = 'source pulses (frames) per second',
        unit = 'Hz',
        abslimits = (0.1, 10000),
        default = 10 * instance.timescale,
        fmtstr = '%.1f',
    ),
    beam_current = device('nicos.devices.generic.VirtualMotor',
        requires = user_only,
        description = 'proton beam current on target (set it to simulate beam trips)',
        unit = 'uA',
        abslimits = (0, 300),
        curvalue = 180,
        jitter = 0.5,
        fmtstr = '%.1f',
        speed = 0,
    ),
)
