description = 'the demo instrument: choppers, sample environment, detector'
group = 'basic'

includes = ['system', 'choppers', 'sample', 'detector']
