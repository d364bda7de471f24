# Loads a Vagrantfile as Vagrant does (Kernel.load), with a stand-in for the part of Vagrant's
# configuration API it uses, and prints what it configured as JSON: the global vm settings and each
# machine's (hostname, networks, providers, provisioners with path and env). No VM, no provider.
# Usage: ruby vagrantfile-plan.rb PATH/Vagrantfile
require "json"

# config.vm (global or one machine's): records every setting and call.
class VmConfig
  attr_reader :data

  def initialize
    @data = { "networks" => [], "provisioners" => [], "synced_folders" => [], "providers" => {}, "machines" => [] }
  end

  def box=(value)
    @data["box"] = value
  end

  def hostname=(value)
    @data["hostname"] = value
  end

  def synced_folder(source, destination, **options)
    @data["synced_folders"] << { "source" => source, "destination" => destination, "options" => options }
  end

  def network(type, **options)
    @data["networks"] << { "type" => type }.merge(options.transform_keys(&:to_s))
  end

  def provider(name)
    settings = ProviderConfig.new
    yield settings
    @data["providers"][name] = settings.settings
  end

  def provision(name, **options)
    @data["provisioners"] << { "name" => name }.merge(options.transform_keys(&:to_s))
  end

  def define(name, **options)
    machine = Config.new
    yield machine
    @data["machines"] << { "name" => name, "options" => options.transform_keys(&:to_s) }.merge(machine.vm.data)
  end
end

# A provider block (vb.memory = ...): any assignment is a setting.
class ProviderConfig
  attr_reader :settings

  def initialize
    @settings = {}
  end

  def method_missing(name, *args)
    return super unless name.to_s.end_with?("=")

    @settings[name.to_s.chomp("=")] = args.first
  end

  def respond_to_missing?(name, include_private = false)
    name.to_s.end_with?("=") || super
  end
end

# The `config` a Vagrant.configure block receives.
class Config
  attr_reader :vm

  def initialize
    @vm = VmConfig.new
  end
end

# Vagrant.configure("2") { |config| ... }
module Vagrant
  @configs = []

  class << self
    attr_reader :configs

    def configure(_version)
      config = Config.new
      yield config
      @configs << config.vm.data
    end
  end
end

load ARGV.fetch(0)
puts JSON.generate(Vagrant.configs)
