description = 'disk choppers selecting the incident energy'
group = 'lowlevel'

from nicos_scriptserver.instance.config import Instance

instance = Instance.from_env()

# Guests may watch, not move (NICOS checks this on every start()).
user_only = {'level': 'user'}

# Their distances from the moderator live with the set_ei command.
CHOPPERS = ('chopper1', 'chopper2', 'chopper3')

devices = {}
for _name in CHOPPERS:
    devices[_name + '_speed'] = device('nicos_scriptserver.daemon.demodevices.DemoMotor',
        requires = user_only,
        description = f'{_name} rotation speed',
        unit = 'Hz',
        abslimits = (0, 600),
        fmtstr = '%.1f',
        speed = 150 * instance.timescale,
    )
    devices[_name + '_phase'] = device('nicos_scriptserver.daemon.demodevices.DemoMotor',
        requires = user_only,
        description = f'{_name} phase relative to the source pulse',
        unit = 'deg',
        abslimits = (0, 360),
        fmtstr = '%.2f',
        speed = 90 * instance.timescale,
    )
