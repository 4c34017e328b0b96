description = 'loaded when the daemon starts for the first time'
group = 'lowlevel'

includes = ['demo']
