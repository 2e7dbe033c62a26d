package Test::Nginx::Block;

# A self-contained reader for the Test::Base block format used by
# Test::Nginx::Socket test files (the part of Test::Base that .t files
# rely on):
#
#   === TEST 1: name              starts a block
#   --- section                   multi-line value up to the next section
#   --- section: value            one-line value (surrounding blanks cut)
#   --- section filter ...        filters applied in order (eval, chomp, ...)
#   --- ONLY / --- SKIP / --- LAST
#
# Every value goes through the default filters "norm" (CRLF -> LF) and
# "trim" (blank lines at both ends removed, the last newline kept), as in
# Test::Base.  The "eval" filter runs the text as Perl in package main.

use strict;
use warnings;
use Carp qw(croak);
use MIME::Base64 ();

our $AUTOLOAD;

sub new {
    my ($class, %v) = @_;
    return bless { %v }, $class;
}

# $block->name, $block->config, ... : undef when the section is absent
sub AUTOLOAD {
    my $self = shift;
    my $n = $AUTOLOAD;
    $n =~ s/.*:://;
    return if $n eq 'DESTROY';
    croak "Test::Nginx::Block: $n takes no arguments; use set_value" if @_;
    return $self->{$n};
}

sub set_value {
    my ($self, $key, @v) = @_;
    $self->{$key} = @v > 1 ? [@v] : $v[0];
    return;
}

sub has_section {
    my ($self, $key) = @_;
    return exists $self->{$key};
}

sub sections {
    my $self = shift;
    return @{ $self->{_section_order} || [] };
}

sub original_value {
    my ($self, $key) = @_;
    return $self->{_original}{$key};
}

# ---------------------------------------------------------------- filters

my %FILTERS;

%FILTERS = (
    norm => sub {
        my $t = shift;
        $t = '' unless defined $t;
        $t =~ s/\015\012/\n/g;
        $t =~ s/\r/\n/g;
        return $t;
    },
    trim => sub {
        my $t = shift;
        return $t unless defined $t;
        $t =~ s/\A([ \t]*\n)+//;
        $t =~ s/(?<=\n)\s*\z//;
        return $t;
    },
    chomp => sub { my $t = shift; chomp $t if defined $t; $t },
    chop  => sub { my $t = shift; chop $t if defined $t; $t },
    uc    => sub { uc shift },
    lc    => sub { lc shift },
    base64_decode => sub { MIME::Base64::decode_base64(shift) },
    base64_encode => sub { MIME::Base64::encode_base64(shift, '') },
    lines => sub {
        my $t = shift;
        return [] unless defined $t && length $t;
        return [ $t =~ /^(.*\n?)/gm ];
    },
    join => sub {
        my $t = shift;
        return ref $t eq 'ARRAY' ? join('', @$t) : $t;
    },
);

sub _eval_in_main {
    my ($code, $where) = @_;
    my @r;
    {
        package main;
        no strict;
        no warnings;
        @r = eval $code;
    }
    if ($@) {
        croak "$where: eval failed: $@";
    }
    return @r;
}

sub apply_filters {
    my ($value, $filters, $where) = @_;
    for my $f (@$filters) {
        next unless length $f;
        if ($f eq 'eval') {
            my @r = _eval_in_main($value, $where);
            $value = @r == 1 ? $r[0] : @r == 0 ? undef : [@r];
        } elsif ($FILTERS{$f}) {
            $value = $FILTERS{$f}->($value);
        } elsif (defined &{"main::$f"}) {
            no strict 'refs';
            local $_ = $value;
            my @r = &{"main::$f"}($value);
            $value = @r == 1 ? $r[0] : [@r];
        } else {
            croak "$where: unknown filter '$f'";
        }
    }
    return $value;
}

# ---------------------------------------------------------------- parsing

my %RESERVED = map { $_ => 1 } qw(name description seq_num set_value
    has_section sections original_value new);

# parse_spec($text, $file) -> list of blocks (ONLY/SKIP/LAST applied)
sub parse_spec {
    my ($spec, $file) = @_;
    $file = $0 unless defined $file;
    return () unless defined $spec;

    my @hunks = ($spec =~ /^(===.*?(?=^===|\z))/msg);
    my @blocks;
    my $seq = 0;
    my $only;

    for my $hunk (@hunks) {
        $seq++;
        my $b = _make_block($hunk, $file, $seq);
        if (exists $b->{ONLY}) {
            $only = $b;
            last;
        }
        next if exists $b->{SKIP};
        push @blocks, $b;
        last if exists $b->{LAST};
    }

    if ($only) {
        Test::More::diag("I found ONLY: maybe you're debugging?");
        return ($only);
    }
    return @blocks;
}

sub _make_block {
    my ($hunk, $file, $seq) = @_;

    $hunk =~ s/\A===[ \t]*(.*)\s+// or croak "bad block in $file";
    my $name = $1;
    my @parts = split /^--- +\(?(\w+)\)? *(.*)?\n/m, $hunk;
    my $description = shift @parts;
    $description = '' unless defined $description;
    $description = $name unless $description =~ /\S/;
    $description =~ s/\s*\z//;

    my $b = Test::Nginx::Block->new(
        name => $name,
        description => $description,
        seq_num => $seq,
        _section_order => [],
        _original => {},
    );

    while (@parts) {
        my ($type, $filters, $value) = splice(@parts, 0, 3);
        croak "$file: '$type' is a reserved name in block '$name'"
            if $RESERVED{$type} || $type =~ /^_/;
        $value = '' unless defined $value;
        $filters = '' unless defined $filters;

        if ($filters =~ /:(\s|\z)/) {
            croak "$file: block '$name': extra lines not allowed in "
                . "one-line section '$type'"
                if $value =~ /\S/;
            ($filters, $value) = split /\s*:(?:\s+|\z)/, $filters, 2;
            $value = '' unless defined $value;
            $value =~ s/^\s*(.*?)\s*$/$1/;
        }

        $filters =~ s/^\s+|\s+$//g;
        my @f = ('norm', 'trim');
        for my $f (split /\s+/, $filters) {
            if ($f =~ s/^-//) {
                @f = grep { $_ ne $f } @f;
            } else {
                $f =~ s/^\+//;
                push @f, $f;
            }
        }

        $b->{_original}{$type} = $value;
        push @{ $b->{_section_order} }, $type;
        $b->{$type} = apply_filters($value, \@f,
                                    "$file block '$name' section '$type'");
    }

    return $b;
}

1;
