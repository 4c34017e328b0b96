description = 'system setup of the demo instrument'
group = 'lowlevel'

from nicos_scriptserver.instance.config import Instance

instance = Instance.from_env()

sysconfig = dict(
    cache = instance.cache_address,
    instrument = 'DEMO',
    experiment = 'Exp',
    datasinks = [],
    notifiers = [],
)

modules = ['nicos.commands.standard', 'nicos_scriptserver.daemon.jobapi',
           'nicos_scriptserver.daemon.console']

devices = dict(
    DEMO = device('nicos.devices.instrument.Instrument',
        description = 'demo time-of-flight spectrometer',
        instrument = 'DEMO',
        facility = 'nicos-scriptserver demo',
        responsible = 'Instrument Scientist <scientist@example.org>',
        website = 'https://example.org/demo',
        operators = ['nicos-scriptserver'],
    ),
    Sample = device('nicos.devices.sample.Sample',
        description = 'the sample in the beam',
    ),
    Exp = device('nicos.devices.experiment.Experiment',
        description = 'the current experiment',
        dataroot = str(instance.datadir / 'data'),
        sample = 'Sample',
        elog = False,
        sendmail = False,
        serviceexp = 'service',
        detlist = ['det'],
        # A failing command ends the job (and marks it failed) instead of
        # being logged while the script carries on.
        errorbehavior = 'abort',
    ),
    Commands = device('nicos_scriptserver.daemon.catalogdev.CommandCatalog',
        description = "the instrument's commands",
        folders = [str(p) for p in instance.command_folders],
    ),
)
